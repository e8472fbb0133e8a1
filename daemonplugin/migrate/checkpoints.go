package migrate

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	units "github.com/docker/go-units"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/agentclient"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
)

// Background checkpoints (warm relocation, the source's side): every
// container whose service has an interval (labels.CheckpointEvery) is
// checkpointed while it runs, at that interval, and sent to the standby
// node the swarm leader chose for it (StandbyAssign). The container is
// frozen while CRIU dumps it and its files are copied into a local tar, so
// that memory and files are of one moment; it runs again before anything
// goes out on the network.

// checkpointTick is how often the loop looks for checkpoints that are due.
const checkpointTick = time.Second

// checkpointTimeout bounds one checkpoint's transfer.
const checkpointTimeout = 10 * time.Minute

// background is one container's background checkpoints.
type background struct {
	to, toAddr string
	next       time.Time
	status     api.CheckpointStatus
}

// checkpoints are this node's background checkpoints, by container.
type checkpoints struct {
	mu  sync.Mutex
	all map[string]*background
}

func (c *checkpoints) get(name string) *background {
	if c.all == nil {
		c.all = map[string]*background{}
	}
	b, ok := c.all[name]
	if !ok {
		b = &background{}
		c.all[name] = b
	}
	return b
}

// StandbyAssign takes the leader's choice of standby node for one of this
// node's containers; its next checkpoint goes there.
func (m *Migrator) StandbyAssign(ctx context.Context, req api.StandbyAssign) (struct{}, error) {
	if req.To == "" || req.To == m.Node || !validAddr(req.ToAddr) {
		return struct{}{}, workloads.Refuse(errdefs.ErrInvalidArgument, "bad standby assignment %+v", req)
	}
	c, err := m.Engine.ContainerInspect(ctx, req.Container, client.ContainerInspectOptions{})
	if err != nil {
		return struct{}{}, err
	}
	if c.Container.Config.Labels[labels.CheckpointEvery] == "" {
		return struct{}{}, workloads.Refuse(errdefs.ErrFailedPrecondition, "%s on %s has no background checkpoints", req.Container, m.Node)
	}
	if onHostNetwork(c.Container) {
		return struct{}{}, workloads.Refuse(errdefs.ErrFailedPrecondition, "%s on %s has no background checkpoints: %s", req.Container, m.Node, hostNetworkProblem)
	}
	m.bg.mu.Lock()
	defer m.bg.mu.Unlock()
	b := m.bg.get(req.Container)
	if b.to != req.To {
		// The new standby holds nothing yet: the next checkpoint is due now.
		b.to, b.toAddr, b.next = req.To, req.ToAddr, time.Time{}
		b.status.At, b.status.Seq = time.Time{}, 0
	}
	return struct{}{}, nil
}

// CheckpointStatus is where container name's background checkpoints
// stand; every is its interval, as its label says.
func (m *Migrator) CheckpointStatus(name, every string) *api.CheckpointStatus {
	m.bg.mu.Lock()
	defer m.bg.mu.Unlock()
	b := m.bg.get(name)
	st := b.status
	st.Every, st.Standby = every, b.to
	return &st
}

// RunCheckpoints takes the background checkpoints that are due, until ctx
// ends; first it thaws what a dead agent left frozen and removes what it
// left half-made.
func (m *Migrator) RunCheckpoints(ctx context.Context) {
	m.thawLeftovers(ctx)
	m.Standby.clean()
	t := time.NewTicker(checkpointTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.checkpointDue(ctx)
	}
}

// checkpointDue takes, one after another, the checkpoints that are due
// (those of containers with a standby), and forgets containers gone.
func (m *Migrator) checkpointDue(ctx context.Context) {
	list, err := m.Engine.ContainerList(ctx, client.ContainerListOptions{
		Filters: make(client.Filters).Add("label", labels.CheckpointEvery).Add("status", "running")})
	if err != nil {
		return
	}
	here := map[string]bool{}
	for _, s := range list.Items {
		if len(s.Names) == 0 {
			continue
		}
		name := s.Names[0][1:]
		here[name] = true
		every, err := time.ParseDuration(s.Labels[labels.CheckpointEvery])
		if err != nil || every <= 0 {
			continue
		}
		m.bg.mu.Lock()
		b := m.bg.get(name)
		due := b.to != "" && !time.Now().Before(b.next)
		if due {
			b.next = time.Now().Add(every)
		}
		to, toAddr := b.to, b.toAddr
		m.bg.mu.Unlock()
		if due {
			m.checkpointOnce(ctx, name, to, toAddr)
		}
	}
	m.bg.mu.Lock()
	defer m.bg.mu.Unlock()
	for name := range m.bg.all {
		if !here[name] {
			delete(m.bg.all, name)
		}
	}
}

// checkpointOnce takes one checkpoint of name and sends it to its standby
// node, recording how it went.
func (m *Migrator) checkpointOnce(ctx context.Context, name, to, toAddr string) {
	end, ok := m.startCheckpoint(name)
	if !ok {
		m.bg.mu.Lock()
		m.bg.get(name).next = time.Now().Add(checkpointTick) // after the upgrade
		m.bg.mu.Unlock()
		return
	}
	res, err := m.checkpointTo(ctx, name, to, toAddr)
	end()
	m.bg.mu.Lock()
	defer m.bg.mu.Unlock()
	b := m.bg.get(name)
	if b.to != to {
		return // reassigned meanwhile
	}
	if errors.Is(err, errBusy) {
		b.next = time.Now().Add(checkpointTick)
		return
	}
	if err != nil {
		b.status.Error = err.Error()
		log.Printf("checkpoint of %s for standby %s failed: %v", name, to, err)
		if errdefs.IsPermissionDenied(err) || errdefs.IsResourceExhausted(err) {
			// The standby no longer expects it (its agent restarted, or
			// the leader chose another) or has no room: the leader
			// chooses again.
			b.to, b.toAddr = "", ""
		}
		return
	}
	b.status.Error = ""
	b.status.At, b.status.Frozen, b.status.Bytes = res.at, res.frozen, res.bytes
	b.status.Seq++
	log.Printf("checkpoint %d of %s to standby %s: frozen %.2fs, %s, sent in %.1fs",
		b.status.Seq, name, to, res.frozen, units.HumanSize(float64(res.bytes)), res.took)
}

// errBusy says a migration holds the host's CRIU: the checkpoint waits.
var errBusy = errors.New("a migration runs on this node")

type checkpointResult struct {
	at           time.Time
	frozen, took float64
	bytes        int64
}

// checkpointTo takes one checkpoint of name and sends it to its standby:
// whole there, or not at all (the standby keeps its older copy).
func (m *Migrator) checkpointTo(ctx context.Context, name, to, toAddr string) (checkpointResult, error) {
	peer, err := m.Peer(to, toAddr)
	if err != nil {
		return checkpointResult{}, err
	}
	snap, err := m.snapshot(ctx, name)
	if err != nil {
		return checkpointResult{}, err
	}
	defer snap.remove(m)
	sent, err := m.sendSnapshot(ctx, peer, snap)
	if err != nil {
		return checkpointResult{}, fmt.Errorf("sending it to %s: %w", to, err)
	}
	return checkpointResult{at: snap.hdr.TakenAt, frozen: snap.frozen, bytes: sent, took: time.Since(snap.hdr.TakenAt).Seconds()}, nil
}

// snap is a checkpoint taken and not sent yet: its files as a tar
// (without the archive's end) and its CRIU images, in host directories.
type snap struct {
	hdr    api.ReceiveHeader
	files  string // host path of the files' tar
	images string // host path of the CRIU images
	dirs   []string
	frozen float64
}

// remove removes the snapshot's files from the host.
func (s snap) remove(m *Migrator) {
	m.removeDirs(s.dirs...)
	_ = os.Remove(s.files)
}

// snapshot freezes name, dumps it leaving it frozen, writes its writable
// layer and volumes into a local tar while it is still frozen (files and
// memory of one moment), and thaws it. Nothing here waits on the network,
// so the freeze is bounded by the host alone. A marker on disk says the
// container is frozen: an agent that dies meanwhile thaws it at start
// (thawLeftovers).
func (m *Migrator) snapshot(ctx context.Context, name string) (snap, error) {
	// One CRIU operation at a time on a host; a migration goes first.
	if !m.mu.TryLock() {
		return snap{}, errBusy
	}
	defer m.mu.Unlock()
	if m.Migrating(name) != "" {
		return snap{}, errBusy
	}
	res, err := m.Engine.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return snap{}, err
	}
	c := res.Container
	if !c.State.Running || c.State.Paused {
		return snap{}, fmt.Errorf("%s is not running", name)
	}
	// Validation refuses checkpoint-every with network_mode: host; a
	// container made otherwise is still never frozen for nothing.
	if onHostNetwork(c) {
		return snap{}, fmt.Errorf("%s has no background checkpoints: %s", name, hostNetworkProblem)
	}
	carrier, err := m.Workloads.Carrier(ctx, c)
	if err != nil {
		return snap{}, err
	}
	if carrier.ID != c.ID {
		return snap{}, fmt.Errorf("%s lives in a network holder (it came from a Docker ≥ 26 engine): background checkpoints of such a container are not supported", name)
	}
	id := newCheckpointID()
	hdr, _, err := m.header(ctx, c, carrier, id)
	if err != nil {
		return snap{}, err
	}
	hdr.ImagesDir = true
	trees, err := m.trees(c)
	if err != nil {
		return snap{}, err
	}
	rt, err := m.findRunc(c)
	if err != nil {
		return snap{}, fmt.Errorf("no direct runc access, which background checkpoints need: %w", err)
	}
	imgDir := m.workDir(id, "-cp")
	// The images in tmpfs, as a migration's; the files, which may be
	// large, on the engine's disk.
	s := snap{hdr: hdr, images: m.host(imgDir), files: filepath.Join(m.Standby.outgoing(), id+"-files.tar"), dirs: []string{imgDir, imgDir + "-work"}}
	if err := os.MkdirAll(m.Standby.outgoing(), 0o700); err != nil {
		return snap{}, err
	}
	failed := func(err error) (snap, error) {
		s.remove(m)
		return snap{}, err
	}

	marker, err := m.markFrozen(c.ID, rt.Root, c.State.Pid)
	if err != nil {
		return failed(err)
	}
	t0 := time.Now()
	s.hdr.TakenAt = t0.UTC()
	if err := rt.run(ctx, "pause", c.ID); err != nil {
		_ = os.Remove(marker)
		return failed(fmt.Errorf("freezing %s: %w", name, err))
	}
	thaw := func() {
		if err := rt.run(context.WithoutCancel(ctx), "resume", c.ID); err != nil {
			log.Printf("checkpoint of %s: resuming it: %v", name, err)
			return // the marker stays: the agent's next start tries again
		}
		_ = os.Remove(marker)
	}
	if err := m.fault(ctx, "checkpoint:frozen"); err != nil {
		thaw()
		return failed(err)
	}
	err = withCRIULock(m.HostRoot, nil, func() error { return m.runcCheckpoint(ctx, rt, c.ID, imgDir) })
	if err != nil {
		err = m.explain(err, name)
		unlockCRIU(context.WithoutCancel(ctx), c.State.Pid)
		thaw()
		return failed(fmt.Errorf("dump: %w", err))
	}
	err = writeFilesTar(s.files, trees)
	thaw()
	s.frozen = time.Since(t0).Seconds()
	if err != nil {
		return failed(fmt.Errorf("reading its files: %w", err))
	}
	return s, nil
}

// writeFilesTar writes trees into a tar file at path, leaving the archive
// open-ended: the CRIU images follow it in the stream.
func writeFilesTar(path string, trees []tree) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, t := range trees {
		if err := writeTree(tw, t.prefix, t.dir); err != nil {
			return fmt.Errorf("%s: %w", strings.TrimSuffix(t.prefix, "/"), err)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// sendSnapshot streams a snapshot to the standby: its files, then its
// images. A stream that makes no progress for stallTimeout is cut.
func (m *Migrator) sendSnapshot(ctx context.Context, peer *agentclient.Client, s snap) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, checkpointTimeout)
	defer cancel()
	pr, pw := io.Pipe()
	sum := newStreamSum()
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(writeSnapshot(io.MultiWriter(pw, sum, counter{&sent}), s))
	}()
	var stalled atomic.Bool
	go func() {
		last, lastAt := int64(-1), time.Now()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if n := sent.Load(); n != last {
				last, lastAt = n, time.Now()
			} else if time.Since(lastAt) > stallTimeout {
				stalled.Store(true)
				cancel()
				return
			}
		}
	}()
	if err := m.fault(ctx, "checkpoint:sending"); err != nil {
		_ = pr.CloseWithError(err)
		<-done
		return 0, err
	}
	err := peer.StandbyReceive(ctx, s.hdr, pr, func() string { return hex.EncodeToString(sum.Sum(nil)) })
	_ = pr.CloseWithError(errAbandoned)
	<-done
	if err != nil && stalled.Load() {
		err = fmt.Errorf("the transfer stalled for %s (is the link to the standby cut?)", stallTimeout)
	}
	return sent.Load(), err
}

// writeSnapshot writes the snapshot's stream: the files' tar as it is,
// then the images' section and the archive's end.
func writeSnapshot(w io.Writer, s snap) error {
	f, err := os.Open(s.files)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	if err := writeTree(tw, api.SectionCheckpoint, s.images); err != nil {
		return err
	}
	return tw.Close()
}

// frozenMarker is a container a background checkpoint froze, on disk
// until it is thawed.
type frozenMarker struct {
	ID       string `json:"id"`
	RuncRoot string `json:"runcRoot"`
	Pid      int    `json:"pid"`
}

// markFrozen records, before the freeze, what to thaw should this agent
// die before it thaws.
func (m *Migrator) markFrozen(id, root string, pid int) (string, error) {
	dir := m.Standby.markers()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	b, err := json.Marshal(frozenMarker{ID: id, RuncRoot: root, Pid: pid})
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, id+".json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return "", err
	}
	return p, nil
}

// thawLeftovers thaws the containers a dead agent's background
// checkpoints left frozen, and takes away CRIU's network lock it may have
// left on them.
func (m *Migrator) thawLeftovers(ctx context.Context) {
	dir := m.Standby.markers()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		var fm frozenMarker
		b, err := os.ReadFile(p)
		if err == nil {
			err = json.Unmarshal(b, &fm)
		}
		if err != nil || !filepath.IsAbs(fm.RuncRoot) {
			_ = os.Remove(p)
			continue
		}
		unlockCRIU(ctx, fm.Pid)
		t := &runcTarget{Root: fm.RuncRoot}
		if err := t.run(ctx, "resume", fm.ID); err != nil {
			log.Printf("thawing %s, which a background checkpoint left frozen: %v", fm.ID, err)
		} else {
			log.Printf("thawed %s, which a background checkpoint left frozen when this node's agent died", fm.ID)
		}
		_ = os.Remove(p)
	}
}

// newCheckpointID names one checkpoint (its directories, its twin's
// labels when it is restored), as a migration id looks.
func newCheckpointID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
