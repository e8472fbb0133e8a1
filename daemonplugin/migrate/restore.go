package migrate

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
)

// restore starts a container from its checkpoint: from the engine's
// checkpoint directory, or (fast path) from images in imgDir, of which the
// engine gets only descriptors.json. extra are CRIU configuration lines for
// this restore alone.
func (m *Migrator) restore(ctx context.Context, id, name string, fast bool, imgDir string, extra ...string) error {
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
		extra = append(extra, "images-dir "+imgDir)
	}
	return withCRIULock(m.HostRoot, extra, func() error {
		// An extra network has no anchor to keep it set up on this node.
		err := workloads.Start(ctx, m.Engine, id, client.ContainerStartOptions{CheckpointID: checkpointName})
		if err != nil {
			return fmt.Errorf("restore: %w", m.explain(engineCRIUError("restore", err), name))
		}
		return nil
	})
}

// restoreSysctls gives a restored container its network sysctls, which
// the restore does not (workloads.SetNetSysctls).
func (m *Migrator) restoreSysctls(ctx context.Context, id string) error {
	res, err := m.Engine.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return err
	}
	c := res.Container
	if c.HostConfig == nil || c.State == nil || c.State.Pid == 0 {
		return nil
	}
	return workloads.SetNetSysctls(m.host("/proc/sys"), c.State.Pid, c.HostConfig.Sysctls)
}

// resumeSysctls is restoreSysctls for a copy resumed here: it runs, so a
// failure is told, not undone.
func (m *Migrator) resumeSysctls(ctx context.Context, id, name string) {
	if err := m.restoreSysctls(ctx, id); err != nil {
		log.Printf("%s runs again on %s without its network sysctls: %v", name, m.Node, err)
	}
}

// checkpointDir is where, through the host root, the engine keeps the
// migration's checkpoint of a container.
func (m *Migrator) checkpointDir(ctx context.Context, id string) (string, error) {
	info, err := m.Engine.Info(ctx, client.InfoOptions{})
	if err != nil {
		return "", fmt.Errorf("engine: %w", err)
	}
	return m.host(filepath.Join(info.Info.DockerRootDir, "containers", id, "checkpoints", checkpointName)), nil
}

// maxPadding bounds what may follow a stream's archive (tar pads to its
// record size).
const maxPadding = 64 << 10

// restoreStats reads CRIU's restore stats, which it leaves in its work
// directory: the images directory unless runc named one in the restored
// container's bundle.
func (m *Migrator) restoreStats(ctx context.Context, id, imgDir string) *api.RestoreStats {
	if s := restoreStats(imgDir); s != nil {
		return s
	}
	res, err := m.Engine.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return nil
	}
	b, err := bundle(res.Container.State.Pid)
	if err != nil {
		return nil
	}
	// The bundle's "work" links to the shim's work directory on the host.
	work := filepath.Join(b, "work")
	if target, err := os.Readlink(m.host(work)); err == nil {
		work = target
	}
	return restoreStats(m.host(work))
}
