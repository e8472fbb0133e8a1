package migrate

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"

	"github.com/docker-fleet/fleet/daemonplugin/journal"
	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
)

// checkpointer is how a migration checkpoints its container, chosen once
// (chooseCheckpointer): runc straight into tmpfs, leaving it frozen (the
// fast path, runc.go), or the engine's checkpoint, which stops it.
type checkpointer interface {
	// freeze checkpoints o's container into o.imgDir, leaving it stopped
	// here. On failure it runs on as before.
	freeze(ctx context.Context, m *Migrator, o *outgoing) (frozen, error)
	// fast says the images stay in tmpfs (ReceiveHeader.ImagesDir).
	fast() bool
	// dumpStats reads CRIU's figures of the dump.
	dumpStats(m *Migrator, o *outgoing) *api.DumpStats
}

// frozen is a container checkpointed for a migration: until the twin runs,
// it can be made to run here again as it was.
type frozen interface {
	// imagesDir is the host path of the CRIU images.
	imagesDir() string
	// resume makes it run here again (its network reconnected first).
	resume(ctx context.Context) error
	// end stops it for good: its twin runs.
	end(ctx context.Context)
}

// chooseCheckpointer takes the fast path where the container's runc state
// is at hand, and the engine's checkpoint otherwise, where that one could
// be restored (engineCheckpointable).
func (m *Migrator) chooseCheckpointer(ctx context.Context, o *outgoing) (checkpointer, error) {
	rt, err := m.findRunc(o.c)
	if err == nil {
		return runcCheckpointer{t: rt, external: o.prep.Holder && !o.inHolder()}, nil
	}
	if err := m.engineCheckpointable(ctx, o.hdr.Name, o.req.To, o.inHolder() || o.prep.Holder, err); err != nil {
		return nil, err
	}
	o.emit(api.MigrateEvent{Phase: api.PhaseCheckpoint, Message: "no direct runc access (" + err.Error() + "): checkpointing through the engine"})
	return engineCheckpointer{}, nil
}

// engineCheckpointable refuses, before the freeze, the engine's checkpoint
// (the fallback without runc access, noRunc saying why) where it could not
// be restored: a network namespace to leave out of it (external), or an
// engine here that restores only into a network holder, which a rollback
// could not have.
func (m *Migrator) engineCheckpointable(ctx context.Context, name, to string, external bool, noRunc error) error {
	why := ""
	if external {
		why = "its network namespace must be left out of the checkpoint (it lives in a network holder, or " + to + " restores into one)"
	} else if needs, err := m.needsHolder(ctx); err != nil {
		return err
	} else if needs {
		why = "this node's engine could restore it, were the migration to fail, only into a network holder"
	}
	if why == "" {
		return nil
	}
	return workloads.Refuse(errdefs.ErrFailedPrecondition,
		"%s cannot migrate to %s, it keeps running on %s untouched: %s, which needs direct runc access, and there is none here (%v)",
		name, to, m.Node, why, noRunc)
}

// frozenFrom is the frozen container a journal record describes, for
// recovery.
func (m *Migrator) frozenFrom(name string, rec journal.SourceRecord, images string) frozen {
	if rec.RuncRoot != "" {
		return &runcFrozen{t: &runcTarget{Root: rec.RuncRoot}, id: rec.ContainerID, pid: rec.Pid, images: m.host(images)}
	}
	return &engineFrozen{m: m, id: rec.ContainerID, name: name}
}

// runcCheckpointer is the fast path; external leaves the network namespace
// out of the checkpoint, for a destination that restores into a holder's.
type runcCheckpointer struct {
	t        *runcTarget
	external bool
}

func (runcCheckpointer) fast() bool { return true }

func (runcCheckpointer) dumpStats(m *Migrator, o *outgoing) *api.DumpStats {
	return dumpStats(m.host(o.imgDir + "-work"))
}

// runcFrozen is the fast path's checkpoint: the container stays frozen in
// its cgroup with its network locked, so that undoing a migration is a
// thaw, not a restore.
type runcFrozen struct {
	t      *runcTarget
	id     string
	pid    int
	images string
}

// freeze freezes the container, locks its network and dumps it, leaving it
// frozen.
func (r runcCheckpointer) freeze(ctx context.Context, m *Migrator, o *outgoing) (frozen, error) {
	name := o.hdr.Name
	f := &runcFrozen{t: r.t, id: o.c.ID, pid: o.c.State.Pid, images: m.host(o.imgDir)}
	failed := func(what string, err error) (frozen, error) {
		if rerr := f.resume(ctx); rerr != nil {
			return nil, fmt.Errorf("checkpoint of %s failed (%s: %v), and resuming it on %s failed too: %v", name, what, err, m.Node, rerr)
		}
		return nil, fmt.Errorf("checkpoint of %s failed, it keeps running on %s: %s: %w", name, m.Node, what, err)
	}
	if err := r.t.run(ctx, "pause", o.c.ID); err != nil {
		return nil, fmt.Errorf("checkpoint of %s failed, it keeps running on %s: freezing it: %w", name, m.Node, err)
	}
	if err := lockNetwork(ctx, f.pid); err != nil {
		return failed("locking its network", err)
	}
	if err := m.fault(ctx, "source:dump"); err != nil {
		return failed("dump", err)
	}
	var extra []string
	if r.external {
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", f.pid), &st); err != nil {
			return failed("its network namespace", err)
		}
		extra = append(extra, fmt.Sprintf("external net[%d]:extRootNetNS", st.Ino))
	}
	err := withCRIULock(m.HostRoot, extra, func() error { return m.runcCheckpoint(ctx, r.t, o.c.ID, o.imgDir) })
	if err != nil {
		err = m.explain(err, name)
		unlockCRIU(ctx, f.pid)
		if rerr := f.resume(ctx); rerr != nil {
			return nil, fmt.Errorf("checkpoint of %s failed (%w), and resuming it on %s failed too: %v", name, err, m.Node, rerr)
		}
		return nil, fmt.Errorf("checkpoint of %s failed, it keeps running on %s: %w", name, m.Node, err)
	}
	return f, nil
}

func (f *runcFrozen) imagesDir() string { return f.images }

func (f *runcFrozen) resume(ctx context.Context) error {
	_ = unlockNetwork(ctx, f.pid)
	return f.t.run(ctx, "resume", f.id)
}

// end kills every process of the frozen container; they die as the thaw
// lets them run, before any of their own code does. The engine removes
// what is left.
func (f *runcFrozen) end(ctx context.Context) {
	_ = f.t.run(ctx, "kill", "--all", f.id, "KILL")
	_ = f.t.run(ctx, "resume", f.id)
}

// engineCheckpointer checkpoints through the engine, which stops the
// container: undoing the migration restores it from its own checkpoint.
type engineCheckpointer struct{}

func (engineCheckpointer) fast() bool { return false }

func (engineCheckpointer) dumpStats(_ *Migrator, o *outgoing) *api.DumpStats {
	return dumpStats(o.f.imagesDir())
}

type engineFrozen struct {
	m      *Migrator
	id     string
	name   string
	images string
}

func (engineCheckpointer) freeze(ctx context.Context, m *Migrator, o *outgoing) (frozen, error) {
	c, name := o.c, o.hdr.Name
	err := withCRIULock(m.HostRoot, nil, func() error {
		if _, err := m.Engine.CheckpointCreate(ctx, c.ID, client.CheckpointCreateOptions{CheckpointID: checkpointName, Exit: true}); err != nil {
			return engineCRIUError("dump", err)
		}
		return nil
	})
	if err != nil {
		err = m.explain(err, name)
		if now, ierr := m.Engine.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{}); ierr == nil && !now.Container.State.Running {
			// CRIU resumes what it failed to dump; should it not have, the
			// container is brought back from what it was.
			_, _ = m.Engine.ContainerStart(ctx, c.ID, client.ContainerStartOptions{})
		} else if ierr == nil {
			unlockCRIU(ctx, now.Container.State.Pid)
		}
		return nil, fmt.Errorf("checkpoint of %s failed, it keeps running on %s: %w", name, m.Node, err)
	}
	f := &engineFrozen{m: m, id: c.ID, name: name}
	if f.images, err = m.checkpointDir(ctx, c.ID); err != nil {
		if rerr := f.resume(ctx); rerr != nil {
			return nil, fmt.Errorf("finding the checkpoint of %s failed (%v), and restoring it on %s failed too: %v", name, err, m.Node, rerr)
		}
		return nil, fmt.Errorf("finding the checkpoint of %s failed, it runs on %s again: %w", name, m.Node, err)
	}
	return f, nil
}

func (f *engineFrozen) imagesDir() string { return f.images }

// resume restores the container from its own checkpoint, unless it runs.
func (f *engineFrozen) resume(ctx context.Context) error {
	if res, err := f.m.Engine.ContainerInspect(ctx, f.id, client.ContainerInspectOptions{}); err == nil && res.Container.State.Running {
		return nil
	}
	if err := f.m.restore(ctx, f.id, f.name, false, ""); err != nil {
		return err
	}
	f.m.resumeSysctls(ctx, f.id, f.name)
	_, _ = f.m.Engine.CheckpointRemove(ctx, f.id, client.CheckpointRemoveOptions{CheckpointID: checkpointName})
	return nil
}

func (f *engineFrozen) end(context.Context) {}

// undo makes a migration that failed after the freeze as if it had not
// happened: the container's endpoints back on the carrier (the container
// or its holder), the container running again. The destination may hold
// the addresses a while (until it learns the abort): undo tries for up to
// wait.
func (m *Migrator) undo(ctx context.Context, f frozen, rec journal.SourceRecord, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for _, ep := range rec.Endpoints() {
		if err := m.reconnect(ctx, rec.CarrierID, ep, deadline); err != nil {
			return err
		}
	}
	if err := f.resume(ctx); err != nil {
		return err
	}
	// It runs: a resume cannot be tried again, so a policy not given back
	// is told, not retried.
	if err := m.giveBackRestart(ctx, rec); err != nil {
		log.Printf("%s runs on %s again, %v", rec.ContainerID, m.Node, err)
	}
	return nil
}

// reconnect gives the carrier its endpoint back, trying until deadline
// while the address is not free yet.
func (m *Migrator) reconnect(ctx context.Context, carrierID string, ep api.Endpoint, deadline time.Time) error {
	ip, err := netip.ParseAddr(ep.IP)
	if err != nil {
		return fmt.Errorf("journal: address %q: %w", ep.IP, err)
	}
	for !m.connected(ctx, carrierID, ep.Network) {
		_, err := m.Engine.NetworkConnect(ctx, ep.Network, client.NetworkConnectOptions{Container: carrierID,
			EndpointConfig: workloads.Endpoint(ip, ep.Aliases)})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("reconnecting to %s with %s: %w", ep.Network, ep.IP, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return nil
}

// connected says whether container id has an endpoint on network.
func (m *Migrator) connected(ctx context.Context, id, network string) bool {
	res, err := m.Engine.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil || res.Container.NetworkSettings == nil {
		return false
	}
	_, ok := res.Container.NetworkSettings.Networks[network]
	return ok
}
