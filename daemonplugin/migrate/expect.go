package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"

	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
)

// expectTTL bounds how long an announced migration waits for its source.
const expectTTL = 10 * time.Minute

// maxExpected bounds the announcements a node keeps at once.
const maxExpected = 64

var (
	migrationID = regexp.MustCompile(`^[a-z0-9]{8,40}$`)
	volumeName  = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)
	networkName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)
	aliasName   = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)
)

// expected is an announced migration and what the destination learnt of it.
type expected struct {
	api.Expectation
	at time.Time
	// limit is the announced stream size (from prepare): the most the
	// receive may write; image the one tag an image load may bring.
	limit int64
	image string
	// holder says the twin is restored into a network holder (prepare's
	// answer, on which the source checkpointed).
	holder bool
}

// Expect records a migration an operator announced to this destination.
func (m *Migrator) Expect(_ context.Context, e api.Expectation) (struct{}, error) {
	if !migrationID.MatchString(e.ID) || e.From == "" || e.From == m.Node || e.Container == "" || e.Network == "" ||
		e.Cores < 0 || e.Memory < 0 || (e.FromAddr != "" && !validAddr(e.FromAddr)) {
		return struct{}{}, workloads.Refuse(errdefs.ErrInvalidArgument, "bad migration announcement %+v", e)
	}
	if err := m.Accepting(); err != nil {
		return struct{}{}, err
	}
	m.expMu.Lock()
	defer m.expMu.Unlock()
	m.dropStale()
	if len(m.expected) >= maxExpected {
		return struct{}{}, workloads.Refuse(errdefs.ErrResourceExhausted, "node %s already expects %d migrations", m.Node, len(m.expected))
	}
	if m.expected == nil {
		m.expected = map[string]*expected{}
	}
	m.expected[e.ID] = &expected{Expectation: e, at: time.Now()}
	return struct{}{}, nil
}

// claim returns the announced migration id if from is its source; done
// removes it (the receive, which ends it either way).
func (m *Migrator) claim(id, from string, done bool) (expected, error) {
	m.expMu.Lock()
	defer m.expMu.Unlock()
	m.dropStale()
	e, ok := m.expected[id]
	if !ok || e.From != from {
		return expected{}, workloads.Refuse(errdefs.ErrPermissionDenied,
			"node %s may not send migration %q to %s: no operator announced it", from, id, m.Node)
	}
	if done {
		delete(m.expected, id)
	}
	return *e, nil
}

// prepared records what a prepare announced and was answered: the stream's
// size and image, and whether the twin gets a network holder.
func (m *Migrator) prepared(id string, req api.PrepareRequest, holder bool) {
	m.expMu.Lock()
	defer m.expMu.Unlock()
	if e, ok := m.expected[id]; ok {
		e.limit, e.image, e.holder = req.Files+streamedMemory(req), req.Image, holder
	}
}

// streamedMemory bounds the CRIU images a stream may carry: the estimate
// from the memory in use at prepare, or, when the container has a limit
// (the operator announced it), what it may have grown to by the freeze,
// which follows the twin's creation.
func streamedMemory(req api.PrepareRequest) int64 {
	if req.Memory > 0 {
		return max(req.Checkpoint, req.Memory+64<<20)
	}
	return req.Checkpoint
}

func (m *Migrator) dropStale() {
	for id, e := range m.expected {
		if time.Since(e.at) > expectTTL {
			delete(m.expected, id)
		}
	}
}

// checkPrepare refuses a prepare that asks more than the operator announced.
func checkPrepare(e expected, req api.PrepareRequest) error {
	switch {
	case req.Name != e.Container:
		return refuseHeader("container %q, but %q was announced", req.Name, e.Container)
	case req.Cores != e.Cores:
		return refuseHeader("%d cores, but %d were announced", req.Cores, e.Cores)
	case req.Memory != e.Memory:
		return refuseHeader("memory %d, but %d was announced", req.Memory, e.Memory)
	case req.Files < 0 || req.Checkpoint < 0:
		return refuseHeader("negative sizes")
	}
	return nil
}

// checkReceiveHeader refuses a receive header that would make the twin anything
// but the announced container: a migration carries named volumes, its
// configuration, ports, IP and limits, its endpoints on networks that
// joinable allows (attachable overlay networks of the swarm), its secrets
// and configs within bounds at their targets, and nothing that reaches the
// host.
func checkReceiveHeader(e expected, h api.ReceiveHeader, joinable func(network string) error) error {
	if err := checkPrepare(e, api.PrepareRequest{Name: h.Name, Cores: h.Cores, Memory: h.Memory}); err != nil {
		return err
	}
	switch {
	case h.ID != e.ID:
		return refuseHeader("migration %q, but %q was announced", h.ID, e.ID)
	case h.From != e.From:
		return refuseHeader("it comes from %q, not %q", h.From, e.From)
	case h.Network != e.Network:
		return refuseHeader("network %q, but the fleet network is %q", h.Network, e.Network)
	case h.Config.Labels[labels.Service] == "":
		return refuseHeader("it is not a fleet container")
	case h.Checkpoint != checkpointName:
		return refuseHeader("checkpoint %q", h.Checkpoint)
	}
	seen := map[string]bool{}
	for _, v := range h.Volumes {
		switch {
		case !volumeName.MatchString(v.Name):
			return refuseHeader("volume %q is not a named volume (a migration carries no host paths)", v.Name)
		case !path.IsAbs(v.Target) || path.Clean(v.Target) != v.Target:
			return refuseHeader("volume %s: target %q is not a clean absolute path", v.Name, v.Target)
		case seen[v.Name+":"+v.Target]:
			return refuseHeader("volume %s is listed twice at %s", v.Name, v.Target)
		}
		seen[v.Name+":"+v.Target] = true
	}
	if err := checkPrivileges(e.Privileges, h.HostConfig); err != nil {
		return err
	}
	if err := api.CheckFiles(h.Files); err != nil {
		return refuseHeader("%v", err)
	}
	for _, f := range h.Files {
		for _, v := range h.Volumes {
			if v.Target == f.Target {
				return refuseHeader("%s %s and volume %s share the target %s", f.Kind, f.Name, v.Name, f.Target)
			}
		}
	}
	return checkExtra(h, joinable)
}

// maxExtra bounds a container's networks besides the fleet's.
const maxExtra = 16

// checkExtra refuses extra endpoints that are not one address on each of
// a few networks a fleet container may join.
func checkExtra(h api.ReceiveHeader, joinable func(network string) error) error {
	if len(h.Extra) > maxExtra {
		return refuseHeader("%d networks besides the fleet's: at most %d", len(h.Extra), maxExtra)
	}
	seen := map[string]bool{}
	for _, ep := range h.Extra {
		ip, err := netip.ParseAddr(ep.IP)
		switch {
		case !networkName.MatchString(ep.Network):
			return refuseHeader("network %q is not a network name", ep.Network)
		case seen[ep.Network]:
			return refuseHeader("network %s is listed twice", ep.Network)
		case err != nil || !ip.Is4():
			return refuseHeader("network %s: address %q is not an IPv4 address", ep.Network, ep.IP)
		case slices.ContainsFunc(ep.Aliases, func(a string) bool { return !aliasName.MatchString(a) }):
			return refuseHeader("network %s: aliases %q", ep.Network, ep.Aliases)
		}
		seen[ep.Network] = true
		if err := joinable(ep.Network); errdefs.IsPermissionDenied(err) {
			return refuseHeader("%v", err)
		} else if err != nil {
			return err
		}
	}
	return nil
}

// joinable is the rule of the networks a twin may join besides its fleet
// network fleetNet, as this node's engine knows them.
func (m *Migrator) joinable(ctx context.Context, fleetNet string) func(string) error {
	return func(network string) error { return m.Workloads.JoinableNetwork(ctx, network, fleetNet) }
}

// DecodeReceiveHeader reads a receive header strictly: a field this
// version does not know (such as "binds") is refused, not ignored.
func DecodeReceiveHeader(raw []byte) (api.ReceiveHeader, error) {
	var h api.ReceiveHeader
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return h, err
	}
	if dec.More() {
		return h, errors.New("trailing data")
	}
	return h, nil
}

func refuseHeader(format string, args ...any) error {
	return workloads.Refuse(errdefs.ErrPermissionDenied, "refused migration: %s", fmt.Sprintf(format, args...))
}

func validAddr(a string) bool {
	_, _, err := splitAddr(a)
	return err == nil
}

// checkPrivileges refuses a header whose container would be given, here,
// a capability or an unconfined security option the announcement does
// not vouch for.
func checkPrivileges(p *api.Privileges, hc *container.HostConfig) error {
	for _, c := range workloads.CarryHostConfig(hc).CapAdd {
		if !p.AllowsCap(c) {
			return refuseHeader("capability %s, which its service does not give", c)
		}
	}
	for _, o := range workloads.Unconfined(hc) {
		if !p.AllowsUnconfined(o) {
			return refuseHeader("security option %s, which its service does not give", o)
		}
	}
	return nil
}

// withAnnouncedLogging gives the twin the log driver the announcement
// names, and otherwise this engine's default: never the peer's word, whose
// options could make this engine connect anywhere.
func withAnnouncedLogging(h *api.ReceiveHeader, p *api.Privileges) {
	var lc container.LogConfig
	if p != nil && p.Logging != nil {
		lc = container.LogConfig{Type: p.Logging.Driver, Config: maps.Clone(p.Logging.Options)}
	}
	if h.HostConfig == nil {
		if lc.Type == "" {
			return
		}
		h.HostConfig = &container.HostConfig{}
	}
	h.HostConfig.LogConfig = lc
}
