// Package swarmtest is an in-memory swarm manager for tests of what keeps
// the fleet in the swarm (swarmstore, and the CLI on top of it): configs,
// networks and nodes (their labels and availability), refused as the
// engine refuses them (a name taken is a conflict, a missing one not
// found, an update of a version that moved on a conflict), and failures
// to inject.
package swarmtest

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/labels"
)

// Swarm is a swarm manager's engine holding configs, networks and nodes.
// The calls it does not fake panic (its embedded client.APIClient is nil),
// naming what a test reached for.
type Swarm struct {
	client.APIClient

	mu       sync.Mutex
	ids      int
	configs  []swarm.Config // in creation order
	networks []network.Network
	nodes    []swarm.Node
	calls    map[string]int
	fails    map[string]map[int]error
}

// New is an empty swarm.
func New() *Swarm {
	return &Swarm{calls: map[string]int{}, fails: map[string]map[int]error{}}
}

// Fail has the nth call of method (1: the first since New; 0: every one)
// fail with err.
func (s *Swarm) Fail(method string, nth int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fails[method] == nil {
		s.fails[method] = map[int]error{}
	}
	s.fails[method][nth] = err
}

// Calls is how many times method was called.
func (s *Swarm) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// enter counts a call of method, under s.mu, and says whether it fails.
func (s *Swarm) enter(method string) error {
	s.calls[method]++
	if err, ok := s.fails[method][s.calls[method]]; ok {
		return err
	}
	return s.fails[method][0]
}

func (s *Swarm) newID() string {
	s.ids++
	return fmt.Sprintf("id%06d", s.ids)
}

// Configs are the configs held, in the order they were made, with label
// (a "key" or "key=value" filter, "" for all).
func (s *Swarm) Configs(label string) []swarm.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []swarm.Config
	for _, c := range s.configs {
		if label == "" || hasLabel(c.Spec.Labels, label) {
			out = append(out, copyConfig(c))
		}
	}
	return out
}

func (s *Swarm) ConfigCreate(_ context.Context, o client.ConfigCreateOptions) (client.ConfigCreateResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter("ConfigCreate"); err != nil {
		return client.ConfigCreateResult{}, err
	}
	if o.Spec.Name == "" {
		return client.ConfigCreateResult{}, errdefs.ErrInvalidArgument.WithMessage("config: no name")
	}
	if s.findConfig(o.Spec.Name) >= 0 {
		return client.ConfigCreateResult{}, errdefs.ErrConflict.WithMessage(fmt.Sprintf("config %s already exists", o.Spec.Name))
	}
	now := time.Now().UTC()
	c := copyConfig(swarm.Config{ID: s.newID(), Meta: swarm.Meta{Version: swarm.Version{Index: 1}, CreatedAt: now, UpdatedAt: now}, Spec: o.Spec})
	s.configs = append(s.configs, c)
	return client.ConfigCreateResult{ID: c.ID}, nil
}

func (s *Swarm) ConfigInspect(_ context.Context, id string, _ client.ConfigInspectOptions) (client.ConfigInspectResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter("ConfigInspect"); err != nil {
		return client.ConfigInspectResult{}, err
	}
	i := s.findConfig(id)
	if i < 0 {
		return client.ConfigInspectResult{}, errdefs.ErrNotFound.WithMessage("config " + id + " not found")
	}
	return client.ConfigInspectResult{Config: copyConfig(s.configs[i])}, nil
}

// ConfigList filters by label (every one given must match) and name.
func (s *Swarm) ConfigList(_ context.Context, o client.ConfigListOptions) (client.ConfigListResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter("ConfigList"); err != nil {
		return client.ConfigListResult{}, err
	}
	var out []swarm.Config
	for _, c := range s.configs {
		if matches(o.Filters, c.Spec.Name, c.Spec.Labels) {
			out = append(out, copyConfig(c))
		}
	}
	return client.ConfigListResult{Items: out}, nil
}

// ConfigUpdate changes a config's labels, as the swarm allows: on the
// version read, its data unchanged.
func (s *Swarm) ConfigUpdate(_ context.Context, id string, o client.ConfigUpdateOptions) (client.ConfigUpdateResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter("ConfigUpdate"); err != nil {
		return client.ConfigUpdateResult{}, err
	}
	i := s.findConfig(id)
	if i < 0 {
		return client.ConfigUpdateResult{}, errdefs.ErrNotFound.WithMessage("config " + id + " not found")
	}
	c := &s.configs[i]
	if o.Version != c.Version {
		return client.ConfigUpdateResult{}, errdefs.ErrConflict.WithMessage("update out of sequence")
	}
	if o.Spec.Name != c.Spec.Name || string(o.Spec.Data) != string(c.Spec.Data) {
		return client.ConfigUpdateResult{}, errdefs.ErrInvalidArgument.WithMessage("only updates to Labels are allowed")
	}
	c.Spec.Labels = maps.Clone(o.Spec.Labels)
	c.Version.Index++
	c.UpdatedAt = time.Now().UTC()
	return client.ConfigUpdateResult{}, nil
}

func (s *Swarm) ConfigRemove(_ context.Context, id string, _ client.ConfigRemoveOptions) (client.ConfigRemoveResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter("ConfigRemove"); err != nil {
		return client.ConfigRemoveResult{}, err
	}
	i := s.findConfig(id)
	if i < 0 {
		return client.ConfigRemoveResult{}, errdefs.ErrNotFound.WithMessage("config " + id + " not found")
	}
	s.configs = slices.Delete(s.configs, i, i+1)
	return client.ConfigRemoveResult{}, nil
}

// findConfig is the index of the config of that ID or name, or -1.
func (s *Swarm) findConfig(idOrName string) int {
	if i := slices.IndexFunc(s.configs, func(c swarm.Config) bool { return c.ID == idOrName }); i >= 0 {
		return i
	}
	return slices.IndexFunc(s.configs, func(c swarm.Config) bool { return c.Spec.Name == idOrName })
}

// AddFleetNetwork adds the overlay network init makes for the fleet (it
// carries labels.Network).
func (s *Swarm) AddFleetNetwork(name, subnet string) {
	n := network.Network{Name: name, Driver: "overlay", Scope: "swarm", Attachable: true, Labels: map[string]string{labels.Network: "1"}}
	if p, err := netip.ParsePrefix(subnet); err == nil {
		n.IPAM.Config = []network.IPAMConfig{{Subnet: p}}
	}
	s.AddNetwork(n)
}

// AddNetwork adds a network (it is given an ID if it has none).
func (s *Swarm) AddNetwork(n network.Network) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n.ID == "" {
		n.ID = s.newID()
	}
	s.networks = append(s.networks, n)
}

func (s *Swarm) NetworkList(_ context.Context, o client.NetworkListOptions) (client.NetworkListResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter("NetworkList"); err != nil {
		return client.NetworkListResult{}, err
	}
	var out []network.Summary
	for _, n := range s.networks {
		if matches(o.Filters, n.Name, n.Labels) {
			out = append(out, network.Summary{Network: n})
		}
	}
	return client.NetworkListResult{Items: out}, nil
}

func (s *Swarm) NetworkInspect(_ context.Context, id string, _ client.NetworkInspectOptions) (client.NetworkInspectResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter("NetworkInspect"); err != nil {
		return client.NetworkInspectResult{}, err
	}
	for _, n := range s.networks {
		if n.ID == id || n.Name == id {
			return client.NetworkInspectResult{Network: network.Inspect{Network: n}}, nil
		}
	}
	return client.NetworkInspectResult{}, errdefs.ErrNotFound.WithMessage("network " + id + " not found")
}

func (s *Swarm) NetworkCreate(_ context.Context, name string, o client.NetworkCreateOptions) (client.NetworkCreateResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter("NetworkCreate"); err != nil {
		return client.NetworkCreateResult{}, err
	}
	if slices.ContainsFunc(s.networks, func(n network.Network) bool { return n.Name == name }) {
		return client.NetworkCreateResult{}, errdefs.ErrConflict.WithMessage("network with name " + name + " already exists")
	}
	n := network.Network{ID: s.newID(), Name: name, Driver: o.Driver, Scope: o.Scope, Attachable: o.Attachable,
		Internal: o.Internal, Labels: maps.Clone(o.Labels), Options: maps.Clone(o.Options)}
	if o.IPAM != nil {
		n.IPAM = *o.IPAM
	}
	s.networks = append(s.networks, n)
	return client.NetworkCreateResult{ID: n.ID}, nil
}

// AddNode adds a swarm node: ready, active, a worker unless role says
// "manager", with the fleet agent's port recorded on it (0: none).
func (s *Swarm) AddNode(hostname, role string, agentPort int) swarm.Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := swarm.Node{ID: s.newID()}
	n.Description.Hostname = hostname
	n.Spec.Role = swarm.NodeRoleWorker
	if role == string(swarm.NodeRoleManager) {
		n.Spec.Role = swarm.NodeRoleManager
	}
	n.Spec.Availability = swarm.NodeAvailabilityActive
	n.Version = swarm.Version{Index: 1}
	n.Status = swarm.NodeStatus{State: swarm.NodeStateReady, Addr: "10.0.0." + strconv.Itoa(len(s.nodes)+1)}
	if agentPort != 0 {
		n.Spec.Labels = map[string]string{labels.AgentPort: strconv.Itoa(agentPort)}
	}
	s.nodes = append(s.nodes, n)
	return n
}

func (s *Swarm) NodeList(_ context.Context, o client.NodeListOptions) (client.NodeListResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter("NodeList"); err != nil {
		return client.NodeListResult{}, err
	}
	return client.NodeListResult{Items: slices.Clone(s.nodes)}, nil
}

// NodeInspect finds a node by ID or hostname.
func (s *Swarm) NodeInspect(_ context.Context, id string, _ client.NodeInspectOptions) (client.NodeInspectResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter("NodeInspect"); err != nil {
		return client.NodeInspectResult{}, err
	}
	i := s.findNode(id)
	if i < 0 {
		return client.NodeInspectResult{}, errdefs.ErrNotFound.WithMessage("node " + id + " not found")
	}
	return client.NodeInspectResult{Node: copyNode(s.nodes[i])}, nil
}

// NodeUpdate replaces a node's spec, on the version read as the swarm
// requires.
func (s *Swarm) NodeUpdate(_ context.Context, id string, o client.NodeUpdateOptions) (client.NodeUpdateResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter("NodeUpdate"); err != nil {
		return client.NodeUpdateResult{}, err
	}
	i := s.findNode(id)
	if i < 0 {
		return client.NodeUpdateResult{}, errdefs.ErrNotFound.WithMessage("node " + id + " not found")
	}
	n := &s.nodes[i]
	if o.Version != n.Version {
		return client.NodeUpdateResult{}, errdefs.ErrConflict.WithMessage("update out of sequence")
	}
	switch o.Spec.Availability {
	case swarm.NodeAvailabilityActive, swarm.NodeAvailabilityPause, swarm.NodeAvailabilityDrain:
	default:
		return client.NodeUpdateResult{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid availability %q", o.Spec.Availability))
	}
	n.Spec = o.Spec
	n.Spec.Labels = maps.Clone(o.Spec.Labels)
	n.Version.Index++
	return client.NodeUpdateResult{}, nil
}

func (s *Swarm) findNode(idOrName string) int {
	return slices.IndexFunc(s.nodes, func(n swarm.Node) bool { return n.ID == idOrName || n.Description.Hostname == idOrName })
}

func copyNode(n swarm.Node) swarm.Node {
	n.Spec.Labels = maps.Clone(n.Spec.Labels)
	return n
}

// ImageInspect finds no image: the manager's engine here has none, which
// callers that only ask for a size take in their stride.
func (s *Swarm) ImageInspect(_ context.Context, id string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter("ImageInspect"); err != nil {
		return client.ImageInspectResult{}, err
	}
	return client.ImageInspectResult{}, errdefs.ErrNotFound.WithMessage("no such image: " + id)
}

// matches applies the filters the store uses: every "label" ("key" or
// "key=value") must match, and a "name" one is a substring of the name.
func matches(f client.Filters, name string, l map[string]string) bool {
	for label := range f["label"] {
		if !hasLabel(l, label) {
			return false
		}
	}
	if names := f["name"]; len(names) > 0 {
		ok := false
		for n := range names {
			ok = ok || strings.Contains(name, n)
		}
		return ok
	}
	return true
}

func hasLabel(l map[string]string, filter string) bool {
	k, v, withValue := strings.Cut(filter, "=")
	got, ok := l[k]
	return ok && (!withValue || got == v)
}

// copyConfig keeps callers from changing what the swarm holds through the
// maps and slices they are given (the store edits labels in place).
func copyConfig(c swarm.Config) swarm.Config {
	c.Spec.Labels = maps.Clone(c.Spec.Labels)
	c.Spec.Data = slices.Clone(c.Spec.Data)
	return c
}
