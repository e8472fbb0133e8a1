package migrate

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/daemonplugin/journal"
	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/agentclient"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/labels"
)

// outgoing is a migration as its source drives it.
type outgoing struct {
	req     api.MigrateRequest
	c       container.InspectResponse
	carrier container.InspectResponse // holds c's endpoint: c, or its holder
	hdr     api.ReceiveHeader
	trees   []tree
	peer    *agentclient.Client
	prep    api.PrepareResponse
	cp      checkpointer
	stream  *stream
	imgDir  string
	f       frozen
	emit    func(api.MigrateEvent)

	start, frozenAt time.Time
	phases          api.Phases // from frozenAt

	// filesDir holds the container's secrets and configs here.
	filesDir string
	// files is what the writable layer and volumes take in the stream, as
	// measured before the freeze: the transfer's expected total, with the
	// CRIU images.
	files int64
}

// since is the time from the freeze to now, in seconds.
func (o *outgoing) since() float64 { return time.Since(o.frozenAt).Seconds() }

// inHolder says c lives in a holder's network namespace: it is checkpointed
// without it, and so restored into one wherever it goes.
func (o *outgoing) inHolder() bool { return o.carrier.ID != o.c.ID }

// Migrate moves one of this node's containers to req.To. It ends with the
// container running on the destination and removed here, or running here
// with its state; when an agent or the link fails at the wrong moment, the
// journals of both sides bring it to one of those ends (recover.go).
func (m *Migrator) Migrate(ctx context.Context, req api.MigrateRequest, emit func(api.MigrateEvent)) (*api.MigrateResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Once frozen, the container's fate must not depend on the caller
	// staying connected.
	ctx = context.WithoutCancel(ctx)
	o, err := m.plan(ctx, req, emit)
	if err != nil {
		return nil, err
	}
	done, err := m.begin(req.ID, o.hdr.Name)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := m.prepare(ctx, o); err != nil {
		return nil, err
	}
	// The stream opens before the freeze: the destination makes the twin
	// meanwhile. Whatever ends the migration early ends the stream too,
	// and the destination removes its twin.
	o.stream = m.openStream(ctx, o)
	defer o.stream.abandon()
	if err := o.stream.awaitReady(); err != nil {
		return nil, fmt.Errorf("%s runs on %s untouched, it was not frozen: destination %s: %w", o.hdr.Name, m.Node, req.To, err)
	}
	if err := m.fault(ctx, "source:prepared"); err != nil {
		return nil, err
	}
	// The dump's directories go with the journal entry (finish, abort): a
	// migration left to recovery may need its images.
	if err := m.freeze(ctx, o); err != nil {
		return nil, err
	}
	got, err := m.transfer(ctx, o)
	if err != nil {
		return nil, m.abort(ctx, o, err)
	}
	told, err := m.commit(ctx, o)
	if err != nil {
		return nil, err
	}
	downtime := o.since()
	if told {
		// Otherwise the copy there runs fenced until its agent learns
		// the decision: when it became reachable is not known here.
		o.phases.Reachable = downtime
	}
	m.finish(ctx, o, told)
	return &api.MigrateResult{
		Container: o.hdr.Name, From: m.Node, To: req.To, IP: got.IP, Cpuset: got.Cpuset,
		Downtime: downtime, Total: time.Since(o.start).Seconds(), Bytes: got.sent, Phases: &o.phases,
		Dump: got.dump, Restore: got.Restore, Time: time.Now().UTC().Format(time.RFC3339),
	}, nil
}

// plan looks at the container and refuses, before anything changes, what
// cannot migrate: a stopped or foreign container, what CRIU cannot
// checkpoint, a bind mount.
func (m *Migrator) plan(ctx context.Context, req api.MigrateRequest, emit func(api.MigrateEvent)) (*outgoing, error) {
	o := &outgoing{req: req, emit: emit, start: time.Now()}
	if req.ID == "" {
		return nil, workloads.Refuse(errdefs.ErrInvalidArgument, "migration of %s: no migration id (a CLI older than this agent): update docker-fleet", req.Container)
	}
	res, err := m.Engine.ContainerInspect(ctx, req.Container, client.ContainerInspectOptions{})
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", req.Container, m.Node, err)
	}
	o.c = res.Container
	if err := checkable(o.c, req.Container, m.Node); err != nil {
		return nil, err
	}
	if problems := m.precheck(ctx, o.c); len(problems) > 0 {
		return nil, refusePrecheck(strings.TrimPrefix(o.c.Name, "/"), m.Node, problems)
	}
	if o.carrier, err = m.Workloads.Carrier(ctx, o.c); err != nil {
		return nil, err
	}
	if o.hdr, o.filesDir, err = m.header(ctx, o.c, o.carrier, req.ID); err != nil {
		return nil, err
	}
	if o.peer, err = m.Peer(req.To, req.ToAddr); err != nil {
		return nil, err
	}
	if o.trees, err = m.trees(o.c); err != nil {
		return nil, err
	}
	o.imgDir = m.workDir(req.ID, "")
	return o, nil
}

// begin marks the migration as driven by this request, refusing it while
// another holds the container or the node makes way for an upgrade
// (Drain).
func (m *Migrator) begin(id, name string) (func(), error) {
	m.activeMu.Lock()
	defer m.activeMu.Unlock()
	if err := m.drainedLocked(); err != nil {
		return nil, err
	}
	return m.beginLocked(id, name)
}

// beginAlways is begin for what an upgrade must not hold up: a warm
// restore, which is a dead node's failover.
func (m *Migrator) beginAlways(id, name string) (func(), error) {
	m.activeMu.Lock()
	defer m.activeMu.Unlock()
	return m.beginLocked(id, name)
}

func (m *Migrator) beginLocked(id, name string) (func(), error) {
	if why := m.migratingLocked(name); why != "" {
		return nil, workloads.Refuse(errdefs.ErrConflict, "%s cannot migrate now: %s; try again when it ends", name, why)
	}
	if m.active == nil {
		m.active = map[string]string{}
	}
	m.active[id] = name
	return func() {
		m.activeMu.Lock()
		defer m.activeMu.Unlock()
		delete(m.active, id)
	}, nil
}

// isActive says whether a live request drives migration id.
func (m *Migrator) isActive(id string) bool {
	m.activeMu.Lock()
	defer m.activeMu.Unlock()
	_, ok := m.active[id]
	return ok
}

// prepare asks the destination to make room, streams the image if it lacks
// it, and chooses how to checkpoint.
func (m *Migrator) prepare(ctx context.Context, o *outgoing) error {
	o.emit(api.MigrateEvent{Phase: api.PhasePrepare, Message: "asking " + o.req.To})
	prepReq, files, err := m.prepareRequest(ctx, o.c, o.hdr, o.trees)
	if err != nil {
		return err
	}
	o.files = files
	prepReq.InHolder = o.inHolder()
	if o.prep, err = o.peer.Prepare(ctx, o.req.ID, prepReq); err != nil {
		return fmt.Errorf("destination %s: %w", o.req.To, err)
	}
	if opts := newIn4(o); len(opts) > 0 && o.prep.API < 4 {
		return workloads.Refuse(errdefs.ErrFailedPrecondition, "%s cannot migrate to %s, it keeps running on %s untouched: %s's agent is older than API 4 and would drop its %s; upgrade it with docker fleet init",
			o.hdr.Name, o.req.To, m.Node, o.req.To, strings.Join(opts, ", "))
	}
	if !o.prep.HaveImage {
		o.emit(api.MigrateEvent{Phase: api.PhaseImage, Message: "streaming image " + o.c.Config.Image + " to " + o.req.To})
		if err := m.sendImage(ctx, o.peer, o.req.ID, o.c.Config.Image); err != nil {
			return fmt.Errorf("streaming image %s to %s: %w", o.c.Config.Image, o.req.To, err)
		}
	}
	if o.cp, err = m.chooseCheckpointer(ctx, o); err != nil {
		return err
	}
	o.hdr.ImagesDir = o.cp.fast()
	return nil
}

// newIn4 names what the container has that an agent older than API 4
// would drop: its container options, extra networks, secrets and configs.
func newIn4(o *outgoing) []string {
	opts := workloads.CarriedOptions(o.c.HostConfig)
	for _, ep := range o.hdr.Extra {
		opts = append(opts, "network "+ep.Network)
	}
	for _, f := range o.hdr.Files {
		opts = append(opts, f.Kind+" "+f.Name)
	}
	return opts
}

// freeze journals the migration, then checkpoints the container leaving it
// stopped here, and frees its address for the twin. On failure the
// container runs on as before and the journal forgets it.
func (m *Migrator) freeze(ctx context.Context, o *outgoing) error {
	rec := m.sourceRecord(o)
	if err := m.Journal.Put(journal.Entry{ID: o.req.ID, Role: journal.Source, State: journal.Freezing,
		Container: o.hdr.Name, Peer: o.req.To, PeerAddr: o.req.ToAddr, Source: &rec}); err != nil {
		return err
	}
	o.emit(api.MigrateEvent{Phase: api.PhaseCheckpoint, Message: "checkpointing " + o.hdr.Name})
	failed := func(err error) error {
		if rerr := m.giveBackRestart(context.WithoutCancel(ctx), rec); rerr != nil {
			err = fmt.Errorf("%w; %v", err, rerr)
		}
		m.removeDirs(o.imgDir, o.imgDir+"-work")
		_ = m.Journal.Remove(o.req.ID)
		return err
	}
	if err := m.holdRestart(ctx, rec); err != nil {
		return failed(err)
	}
	o.frozenAt = time.Now()
	f, err := o.cp.freeze(ctx, m, o)
	if err != nil {
		return failed(err)
	}
	o.f = f
	o.phases.Dump = o.since()
	o.emit(api.MigrateEvent{Phase: api.PhaseCheckpoint, Message: fmt.Sprintf("checkpointed in %.2fs", o.phases.Dump)})
	if err := m.fault(ctx, "source:frozen"); err != nil {
		return m.abort(ctx, o, err)
	}
	// Free the overlay IPs for the twin (the frozen endpoints would hold
	// them).
	for _, ep := range o.hdr.Endpoints() {
		_, _ = m.Engine.NetworkDisconnect(ctx, ep.Network, client.NetworkDisconnectOptions{Container: o.carrier.ID, Force: true})
	}
	return nil
}

// sourceRecord is what recovery needs to thaw or end the container.
func (m *Migrator) sourceRecord(o *outgoing) journal.SourceRecord {
	rec := journal.SourceRecord{ContainerID: o.c.ID, CarrierID: o.carrier.ID, Pid: o.c.State.Pid,
		Network: o.hdr.Network, IP: o.hdr.IP, Aliases: o.hdr.Aliases, Dirs: []string{o.imgDir, o.imgDir + "-work"},
		Restart: restartOf(o.c.HostConfig), Extra: o.hdr.Extra, FilesDir: o.filesDir}
	if r, ok := o.cp.(runcCheckpointer); ok {
		rec.RuncRoot = r.t.Root
	}
	for _, v := range o.hdr.Volumes {
		rec.Volumes = append(rec.Volumes, v.Name)
	}
	return rec
}

// sent is the destination's answer and what the stream carried.
type sent struct {
	api.ReceiveResult
	sent int64
	dump *api.DumpStats
}

// transfer streams the container to the destination, which restores it
// fenced. An error means the destination may or may not have a fenced copy:
// the source decides (abort) and tells it.
func (m *Migrator) transfer(ctx context.Context, o *outgoing) (sent, error) {
	if err := m.Journal.Set(o.req.ID, journal.Sending); err != nil {
		return sent{}, err
	}
	// CRIU leaves its stats in the work directory runc names, or the
	// engine's checkpoint directory.
	out := sent{dump: o.cp.dumpStats(m, o)}
	o.emit(api.MigrateEvent{Phase: api.PhaseTransfer, Message: "streaming to " + o.req.To})
	n, got, err := o.stream.begin(o.f.imagesDir())
	out.sent, out.ReceiveResult = n, got
	if err != nil {
		return out, err
	}
	o.phases.Restored, o.phases.Twin, o.phases.Restore = o.since(), got.Twin, got.Restored
	return out, m.fault(ctx, "source:restored")
}

// commit is the decision: from the journal's Committed on, the copy here
// runs again only if the destination answers that its own copy died before
// its fence was lifted (no one ever reached it). The destination is told at
// once; if it cannot be, the journal keeps the decision (recovery tells it,
// and it asks) and its copy runs fenced until then. told says whether it
// was told.
func (m *Migrator) commit(ctx context.Context, o *outgoing) (told bool, err error) {
	if err := m.Journal.Set(o.req.ID, journal.Committed); err != nil {
		// Undecided: the abort still holds.
		return false, m.abort(ctx, o, err)
	}
	if err := m.fault(ctx, "source:committed"); err != nil {
		return false, err
	}
	terr := m.tell(ctx, o.peer, o.req.ID, true, 3)
	if errdefs.IsFailedPrecondition(terr) {
		// The destination's copy died before its fence was lifted: no one
		// ever reached it, and the copy here is still whole.
		if _, err := m.transition(o.req.ID, journal.Aborted, journal.Committed); err != nil {
			return false, err
		}
		return false, m.abort(ctx, o, terr)
	}
	if terr != nil {
		o.emit(api.MigrateEvent{Phase: api.PhaseRestore, Message: fmt.Sprintf(
			"%s runs on %s, fenced until its agent learns that the migration is committed (%v); the agents keep trying", o.hdr.Name, o.req.To, terr)})
		return false, nil
	}
	return true, nil
}

// tell sends the decision to the destination, trying up to tries times; a
// destination that no longer knows the migration has acted on it already
// (or never had a copy).
func (m *Migrator) tell(ctx context.Context, peer *agentclient.Client, id string, commit bool, tries int) error {
	var err error
	for i := 0; i < tries; i++ {
		if i > 0 {
			time.Sleep(time.Second)
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = peer.Decide(cctx, id, api.Decision{Commit: commit})
		cancel()
		if err == nil || errdefs.IsNotFound(err) {
			return nil
		}
	}
	return err
}

// finish removes the copy here, its holder and the volumes it took along,
// and forgets the migration once the destination was told. What fails is
// left to recovery.
func (m *Migrator) finish(ctx context.Context, o *outgoing, told bool) {
	if !told {
		// The copy here stays frozen until the destination takes the
		// decision (recovery tells it): its copy may yet turn out dead.
		return
	}
	if err := m.fault(ctx, "source:cleanup"); err != nil {
		return
	}
	if err := m.endSource(ctx, o.f, o.hdr.Name, m.sourceRecord(o)); err != nil {
		o.emit(api.MigrateEvent{Phase: api.PhaseDone, Message: err.Error()})
		return
	}
	_ = m.Journal.Remove(o.req.ID)
}

// endSource ends a committed migration's copy here: the frozen container
// killed, its log kept (the engine removes it with the container), it and
// its holder removed, the volumes it took along removed unless another
// container here uses them, its secrets and configs removed.
func (m *Migrator) endSource(ctx context.Context, f frozen, name string, rec journal.SourceRecord) error {
	f.end(ctx)
	m.keepContainerLog(ctx, rec.ContainerID, name)
	for _, id := range []string{rec.ContainerID, rec.CarrierID} {
		if _, err := m.Engine.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true}); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("removing the stopped copy on %s failed: %w", m.Node, err)
		}
	}
	for _, v := range rec.Volumes {
		// Not forced: a volume another container here still uses stays.
		_, _ = m.Engine.VolumeRemove(ctx, v, client.VolumeRemoveOptions{})
	}
	m.Workloads.RemoveFiles(ctx, rec.FilesDir)
	m.removeDirs(rec.Dirs...)
	return nil
}

// abort is the decision to keep the container here after the freeze: the
// destination is told to remove any copy it has, the container's address
// is taken back and it is thawed. If the address is not free yet (the
// destination not reached), recovery keeps trying; the container stays
// frozen meanwhile, never running in two places.
func (m *Migrator) abort(ctx context.Context, o *outgoing, cause error) error {
	o.emit(api.MigrateEvent{Phase: api.PhaseRollback, Message: "resuming " + o.hdr.Name + " on " + m.Node})
	// A stream not begun ends here: the destination removes its twin.
	o.stream.abandon()
	if err := m.Journal.Set(o.req.ID, journal.Aborted); err != nil {
		return fmt.Errorf("migration to %s failed (%v), and journaling its abort failed: %v; %s stays frozen on %s", o.req.To, cause, err, o.hdr.Name, m.Node)
	}
	_ = m.tell(ctx, o.peer, o.req.ID, false, 2)
	if err := m.undo(ctx, o.f, m.sourceRecord(o), 30*time.Second); err != nil {
		return fmt.Errorf("migration to %s failed (%v), and resuming it on %s is not done yet: %v; this node's agent keeps trying", o.req.To, cause, m.Node, err)
	}
	m.removeDirs(o.imgDir, o.imgDir+"-work")
	_ = m.Journal.Remove(o.req.ID)
	return fmt.Errorf("migration to %s failed, %s runs on %s again with its state: %v", o.req.To, o.hdr.Name, m.Node, cause)
}

// removeDirs removes a migration's host directories.
func (m *Migrator) removeDirs(dirs ...string) {
	for _, d := range dirs {
		_ = os.RemoveAll(m.host(d))
	}
}

// header describes the container for its twin; carrier is the container
// whose endpoints carry its network (itself, or its holder). filesDir is
// where its secrets and configs are here ("" without): they go in the
// header, the fleet's only bind mounts that move.
func (m *Migrator) header(ctx context.Context, c, carrier container.InspectResponse, id string) (h api.ReceiveHeader, filesDir string, err error) {
	name := strings.TrimPrefix(c.Name, "/")
	net := c.Config.Labels[labels.NetworkName]
	ep, ok := carrier.NetworkSettings.Networks[net]
	if !ok || ep == nil || !ep.IPAddress.IsValid() {
		return api.ReceiveHeader{}, "", fmt.Errorf("%s is not on the fleet network %q", name, net)
	}
	h = api.ReceiveHeader{
		ID: id, Name: name, From: m.Node, Checkpoint: checkpointName,
		Config: *c.Config, Network: net, IP: ep.IPAddress.String(), Ports: carrier.HostConfig.PortBindings,
		Memory: c.HostConfig.Memory, MemorySwap: c.HostConfig.MemorySwap,
	}
	// Only when there are options to carry: an agent before API 4 refuses
	// a header field it does not know, and a plain container moves to it.
	if len(workloads.CarriedOptions(c.HostConfig)) > 0 {
		h.HostConfig = c.HostConfig
	}
	// What a holder carries for the container.
	h.Config.Hostname, h.Config.Domainname = carrier.Config.Hostname, carrier.Config.Domainname
	h.Config.ExposedPorts = carrier.Config.ExposedPorts
	h.Aliases = ownAliases(ep, carrier.ID)
	if h.Extra, err = extraEndpoints(carrier, net); err != nil {
		return h, "", fmt.Errorf("%s: %w", name, err)
	}
	if c.Config.Labels[labels.Exclusive] == "true" {
		set, _ := cpuset.Parse(c.HostConfig.CpusetCpus)
		h.Cores = len(set)
	}
	var rest []container.MountPoint
	if h.Files, filesDir, rest, err = m.Workloads.FileMounts(ctx, c.Mounts); err != nil {
		return h, "", fmt.Errorf("%s: %w", name, err)
	}
	for _, mp := range rest {
		switch mp.Type {
		case mount.TypeVolume:
			h.Volumes = append(h.Volumes, api.VolumeMount{Name: mp.Name, Target: mp.Destination, ReadOnly: !mp.RW})
		case mount.TypeBind:
			return h, "", fmt.Errorf("%s bind-mounts %s from its host, which cannot move with it: use a named volume", name, mp.Source)
		}
	}
	return h, filesDir, nil
}

// ownAliases are an endpoint's aliases but the one the engine adds itself
// (the carrier's short ID), which the twin gets anew.
func ownAliases(ep *network.EndpointSettings, carrierID string) []string {
	var out []string
	for _, a := range ep.Aliases {
		if a != carrierID[:12] {
			out = append(out, a)
		}
	}
	return out
}

// extraEndpoints are the carrier's endpoints on networks other than the
// fleet network net, in the order of their names.
func extraEndpoints(carrier container.InspectResponse, net string) ([]api.Endpoint, error) {
	var out []api.Endpoint
	for _, name := range slices.Sorted(maps.Keys(carrier.NetworkSettings.Networks)) {
		ep := carrier.NetworkSettings.Networks[name]
		if name == net || ep == nil {
			continue
		}
		if !ep.IPAddress.IsValid() {
			return nil, fmt.Errorf("it has no address on network %s", name)
		}
		out = append(out, api.Endpoint{Network: name, IP: ep.IPAddress.String(), Aliases: ownAliases(ep, carrier.ID)})
	}
	return out, nil
}

func (m *Migrator) sendImage(ctx context.Context, peer *agentclient.Client, migration, image string) error {
	rc, err := m.Engine.ImageSave(ctx, []string{image})
	if err != nil {
		return err
	}
	defer rc.Close()
	return peer.LoadImage(ctx, migration, rc)
}

// prepareRequest is what the destination must make room for, measured
// before the freeze: the writable layer and volumes by a scan (which also
// refuses what a stream cannot carry), the CRIU images from the memory in
// use. The margins cover what the container writes until it is frozen.
// It also returns what the trees take in the stream (an upper bound close
// to it), for the transfer's progress.
func (m *Migrator) prepareRequest(ctx context.Context, c container.InspectResponse, h api.ReceiveHeader, trees []tree) (api.PrepareRequest, int64, error) {
	// No host ports here: an agent before API 4 refuses a field it does
	// not know. The twin's creation, before the freeze, checks them.
	req := api.PrepareRequest{Name: h.Name, Image: c.Config.Image, ImageID: c.Image, Cores: h.Cores, Memory: h.Memory}
	for _, t := range trees {
		st, err := scanTree(t.prefix, t.dir)
		if err != nil {
			return req, 0, fmt.Errorf("%s cannot migrate: %w", h.Name, err)
		}
		req.Files += st.Bytes
	}
	files := req.Files
	req.Files += req.Files/10 + 16<<20
	used, err := m.Workloads.MemoryUsage(ctx, c.ID)
	if err != nil {
		return req, 0, err
	}
	req.Checkpoint = used + used/4 + 64<<20
	return req, files, nil
}

// tree is one directory the stream carries, under its section's prefix.
type tree struct{ prefix, dir string }

// trees are the container's writable layer and its named volumes (each
// once, however often it is mounted), as host paths.
func (m *Migrator) trees(c container.InspectResponse) ([]tree, error) {
	if c.GraphDriver == nil || c.GraphDriver.Data["UpperDir"] == "" {
		return nil, fmt.Errorf("the engine's storage driver has no writable layer directory (overlay2 is needed)")
	}
	out := []tree{{api.SectionRootfs, m.host(c.GraphDriver.Data["UpperDir"])}}
	seen := map[string]bool{}
	for _, mp := range c.Mounts {
		if mp.Type == mount.TypeVolume && !seen[mp.Name] {
			seen[mp.Name] = true
			out = append(out, tree{api.SectionVolumes + mp.Name + "/", m.host(mp.Source)})
		}
	}
	return out, nil
}

func splitAddr(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("destination address %q: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("destination address %q: bad port", addr)
	}
	return host, p, nil
}
