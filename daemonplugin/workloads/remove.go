package workloads

import (
	"context"
	"fmt"
	"log"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
)

// Remove removes a fleet container; its cores and memory are free again.
func (m *Manager) Remove(ctx context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.notMigrating(name, "removed"); err != nil {
		return err
	}
	c, err := m.fleetInspect(ctx, name)
	if err != nil {
		return err
	}
	if _, err := m.Engine.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true}); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("removing %s on %s: %w", name, m.Node, err)
	}
	m.removeFilesOf(ctx, c.Mounts)
	return m.removeHolderOf(ctx, c)
}

// Fence removes this node's copies of containers that were relocated while
// the node was taken for dead: they run elsewhere now, and a second copy
// must not run (or be started) here.
func (m *Manager) Fence(ctx context.Context, req api.FenceRequest) (api.FenceResult, error) {
	var res api.FenceResult
	if len(req.Containers) == 0 {
		return res, Refuse(errdefs.ErrInvalidArgument, "containers: none named")
	}
	for _, name := range req.Containers {
		err := m.Remove(ctx, name)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return res, err
		}
		res.Removed = append(res.Removed, name)
		log.Printf("fenced: removed %s, which was relocated while this node was taken for dead", name)
	}
	return res, nil
}
