package migrate

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	units "github.com/docker/go-units"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
)

// Background checkpoints (warm relocation, the source's side): every
// container whose service has an interval (labels.CheckpointEvery) is
// checkpointed while it runs, at that interval, and sent to the standby
// node the swarm leader chose for it (StandbyAssign). The container is
// frozen while CRIU dumps it and its files are read, so that memory and
// files are of one moment; it runs again before the memory images go out.

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
	m.bg.mu.Lock()
	defer m.bg.mu.Unlock()
	b := m.bg.get(req.Container)
	if b.to != req.To {
		// The new standby holds nothing yet: the next checkpoint is due now.
		b.to, b.toAddr, b.next = req.To, req.ToAddr, time.Time{}
		b.status.Standby, b.status.At, b.status.Seq = req.To, time.Time{}, 0
	}
	return struct{}{}, nil
}

// CheckpointStatus is where container name's background checkpoints
// stand; every is its interval, as its label says.
func (m *Migrator) CheckpointStatus(name, every string) *api.CheckpointStatus {
	m.bg.mu.Lock()
	defer m.bg.mu.Unlock()
	st := m.bg.get(name).status
	st.Every = every
	return &st
}

// RunCheckpoints takes the background checkpoints that are due, until ctx
// ends.
func (m *Migrator) RunCheckpoints(ctx context.Context) {
	t := time.NewTicker(checkpointTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		list, err := m.Engine.ContainerList(ctx, client.ContainerListOptions{
			Filters: make(client.Filters).Add("label", labels.CheckpointEvery).Add("status", "running")})
		if err != nil {
			continue
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
		for name := range m.bg.all {
			if !here[name] {
				delete(m.bg.all, name)
			}
		}
		m.bg.mu.Unlock()
	}
}

// checkpointOnce takes one checkpoint of name and sends it to its standby
// node, recording how it went.
func (m *Migrator) checkpointOnce(ctx context.Context, name, to, toAddr string) {
	res, err := m.checkpointTo(ctx, name, to, toAddr)
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
		if errdefs.IsPermissionDenied(err) {
			// The standby no longer expects it (its agent restarted, or
			// the leader chose another): the leader chooses again.
			b.to, b.toAddr, b.status.Standby = "", "", ""
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

// checkpointTo freezes name, dumps it leaving it running, streams its
// files while it is still frozen, thaws it, and streams its memory
// images: one checkpoint, whole on the standby node or not at all.
func (m *Migrator) checkpointTo(ctx context.Context, name, to, toAddr string) (checkpointResult, error) {
	// One CRIU operation at a time on a host; a migration goes first.
	if !m.mu.TryLock() {
		return checkpointResult{}, errBusy
	}
	defer m.mu.Unlock()
	if m.Migrating(name) != "" {
		return checkpointResult{}, errBusy
	}
	res, err := m.Engine.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return checkpointResult{}, err
	}
	c := res.Container
	if !c.State.Running || c.State.Paused {
		return checkpointResult{}, fmt.Errorf("%s is not running", name)
	}
	carrier, err := m.Workloads.Carrier(ctx, c)
	if err != nil {
		return checkpointResult{}, err
	}
	if carrier.ID != c.ID {
		return checkpointResult{}, fmt.Errorf("%s lives in a network holder (it came from a Docker ≥ 26 engine): background checkpoints of such a container are not supported", name)
	}
	id := newCheckpointID()
	hdr, err := m.header(c, carrier, id)
	if err != nil {
		return checkpointResult{}, err
	}
	hdr.ImagesDir = true
	trees, err := m.trees(c)
	if err != nil {
		return checkpointResult{}, err
	}
	rt, err := m.findRunc(c)
	if err != nil {
		return checkpointResult{}, fmt.Errorf("no direct runc access, which background checkpoints need: %w", err)
	}
	peer, err := m.peer(to, toAddr)
	if err != nil {
		return checkpointResult{}, err
	}
	imgDir := m.workDir(id, "-cp")
	defer m.removeDirs(imgDir, imgDir+"-work")

	t0 := time.Now()
	if err := rt.run(ctx, "pause", c.ID); err != nil {
		return checkpointResult{}, fmt.Errorf("freezing %s: %w", name, err)
	}
	frozen := true
	thaw := func() {
		if frozen {
			frozen = false
			if err := rt.run(context.WithoutCancel(ctx), "resume", c.ID); err != nil {
				log.Printf("checkpoint of %s: resuming it: %v", name, err)
			}
		}
	}
	defer thaw()
	if err := withCRIULock(m.HostRoot, nil, func() error { return m.runcCheckpoint(ctx, rt, c.ID, imgDir) }); err != nil {
		reason := m.failure(err, "dump", name)
		unlockCRIU(ctx, c.State.Pid)
		return checkpointResult{}, fmt.Errorf("dump: %s", reason)
	}
	frozenFor := time.Since(t0).Seconds()
	out := checkpointResult{at: t0}

	sctx, cancel := context.WithTimeout(ctx, checkpointTimeout)
	defer cancel()
	pr, pw := io.Pipe()
	sum := newStreamSum()
	var sent atomic.Int64
	go func() {
		tw := tar.NewWriter(io.MultiWriter(pw, sum, counter{&sent}))
		err := m.writeCheckpoint(tw, trees, m.host(imgDir), func() {
			// The files are read: the container runs again.
			thaw()
			frozenFor = time.Since(t0).Seconds()
		})
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	err = peer.StandbyReceive(sctx, hdr, pr, func() string { return hex.EncodeToString(sum.Sum(nil)) })
	_ = pr.CloseWithError(errAbandoned)
	if err != nil {
		return checkpointResult{}, fmt.Errorf("sending it to %s: %w", to, err)
	}
	out.frozen, out.bytes, out.took = frozenFor, sent.Load(), time.Since(t0).Seconds()
	return out, nil
}

// writeCheckpoint writes the writable layer and volumes, calls filesDone,
// then writes the CRIU images.
func (m *Migrator) writeCheckpoint(tw *tar.Writer, trees []tree, cpDir string, filesDone func()) error {
	for _, t := range trees {
		if err := writeTree(tw, t.prefix, t.dir); err != nil {
			return err
		}
	}
	filesDone()
	return writeTree(tw, api.SectionCheckpoint, cpDir)
}

// newCheckpointID names one checkpoint (its directories, its twin's
// labels when it is restored), as a migration id looks.
func newCheckpointID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
