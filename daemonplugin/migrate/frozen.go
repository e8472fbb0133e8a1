package migrate

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"

	"github.com/docker-fleet/fleet/shared/api"
)

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

// runcFrozen is the fast path's checkpoint (runc straight into tmpfs, see
// runc.go): the container stays frozen in its cgroup with its network
// locked, so that undoing a migration is a thaw, not a restore.
type runcFrozen struct {
	t      *runcTarget
	id     string
	pid    int
	images string
}

// freeze freezes the container, locks its network and dumps it into imgDir,
// leaving it frozen. external leaves its network namespace out of the
// checkpoint, for a destination that restores it into a holder's. On
// failure the container runs on as before.
func (m *Migrator) freeze(ctx context.Context, t *runcTarget, c container.InspectResponse, name, imgDir string, external bool) (*runcFrozen, error) {
	f := &runcFrozen{t: t, id: c.ID, pid: c.State.Pid, images: m.host(imgDir)}
	if err := t.run(ctx, "pause", c.ID); err != nil {
		return nil, fmt.Errorf("checkpoint of %s failed, it keeps running on %s: freezing it: %w", name, m.Node, err)
	}
	if err := lockNetwork(ctx, f.pid); err != nil {
		_ = f.resume(ctx)
		return nil, fmt.Errorf("checkpoint of %s failed, it keeps running on %s: locking its network: %w", name, m.Node, err)
	}
	var extra []string
	if external {
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", f.pid), &st); err != nil {
			_ = f.resume(ctx)
			return nil, fmt.Errorf("checkpoint of %s failed, it keeps running on %s: %w", name, m.Node, err)
		}
		extra = append(extra, fmt.Sprintf("external net[%d]:extRootNetNS", st.Ino))
	}
	err := withCRIULock(m.HostRoot, extra, func() error { return m.runcCheckpoint(ctx, t, c.ID, imgDir) })
	if err != nil {
		reason := m.failure(err, "dump", name)
		unlockCRIU(ctx, f.pid)
		if rerr := f.resume(ctx); rerr != nil {
			return nil, fmt.Errorf("checkpoint of %s failed (%s), and resuming it on %s failed too: %v", name, reason, m.Node, rerr)
		}
		return nil, fmt.Errorf("checkpoint of %s failed, it keeps running on %s: %s", name, m.Node, reason)
	}
	return f, nil
}

func (f *runcFrozen) imagesDir() string { return f.images }

func (f *runcFrozen) resume(ctx context.Context) error {
	unlockNetwork(ctx, f.pid)
	return f.t.run(ctx, "resume", f.id)
}

// end kills every process of the frozen container; they die as the thaw
// lets them run, before any of their own code does. The engine removes
// what is left.
func (f *runcFrozen) end(ctx context.Context) {
	_ = f.t.run(ctx, "kill", "--all", f.id, "KILL")
	_ = f.t.run(ctx, "resume", f.id)
}

// engineFrozen is a checkpoint made through the engine, which stops the
// container: undoing the migration restores it from its own checkpoint.
type engineFrozen struct {
	m      *Migrator
	id     string
	name   string
	images string
}

// checkpointThroughEngine checkpoints the container through the engine,
// which stops it. On failure the container runs on as before.
func (m *Migrator) checkpointThroughEngine(ctx context.Context, c container.InspectResponse, name, imgDir string) (*engineFrozen, error) {
	err := withCRIULock(m.HostRoot, nil, func() error {
		_, err := m.Engine.CheckpointCreate(ctx, c.ID, client.CheckpointCreateOptions{CheckpointID: checkpointName, Exit: true})
		return err
	})
	if err != nil {
		reason := m.failure(err, "dump", name)
		if now, ierr := m.Engine.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{}); ierr == nil && !now.Container.State.Running {
			// CRIU resumes what it failed to dump; should it not have, the
			// container is brought back from what it was.
			_, _ = m.Engine.ContainerStart(ctx, c.ID, client.ContainerStartOptions{})
		} else if ierr == nil {
			unlockCRIU(ctx, now.Container.State.Pid)
		}
		return nil, fmt.Errorf("checkpoint of %s failed, it keeps running on %s: %s", name, m.Node, reason)
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

func (f *engineFrozen) resume(ctx context.Context) error {
	if err := f.m.restore(ctx, f.id, f.name, false, ""); err != nil {
		return err
	}
	_, _ = f.m.Engine.CheckpointRemove(ctx, f.id, client.CheckpointRemoveOptions{CheckpointID: checkpointName})
	return nil
}

func (f *engineFrozen) end(context.Context) {}

// undo makes a migration that failed after the freeze as if it had not
// happened: the container's endpoint back on the carrier (the container or
// its holder), the container running again.
func (m *Migrator) undo(ctx context.Context, f frozen, carrier string, h api.ReceiveHeader) error {
	ip, _ := netip.ParseAddr(h.IP)
	var lastErr error
	// The destination may still hold the IP for a moment while it cleans up.
	for attempt := 0; attempt < 20; attempt++ {
		_, lastErr = m.Engine.NetworkConnect(ctx, h.Network, client.NetworkConnectOptions{Container: carrier,
			EndpointConfig: &network.EndpointSettings{IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: ip}, Aliases: h.Aliases}})
		if lastErr == nil || errdefs.IsConflict(lastErr) || strings.Contains(lastErr.Error(), "already exists") {
			lastErr = nil
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if lastErr != nil {
		return fmt.Errorf("reconnecting to %s with %s: %w", h.Network, h.IP, lastErr)
	}
	return f.resume(ctx)
}

// restore starts a container from its checkpoint: from the engine's
// checkpoint directory, or (fast path) from images in imgDir, of which the
// engine gets only descriptors.json.
func (m *Migrator) restore(ctx context.Context, id, name string, fast bool, imgDir string) error {
	var extra []string
	if fast {
		cpDir, err := m.checkpointDir(ctx, id)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(cpDir, 0o700); err != nil {
			return err
		}
		desc, err := os.ReadFile(m.host(filepath.Join(imgDir, "descriptors.json")))
		if err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		if err := os.WriteFile(filepath.Join(cpDir, "descriptors.json"), desc, 0o600); err != nil {
			return err
		}
		extra = []string{"images-dir " + imgDir}
	}
	return withCRIULock(m.HostRoot, extra, func() error {
		_, err := m.Engine.ContainerStart(ctx, id, client.ContainerStartOptions{CheckpointID: checkpointName})
		if err != nil {
			return fmt.Errorf("restore: %s", m.failure(err, "restore", name))
		}
		return nil
	})
}
