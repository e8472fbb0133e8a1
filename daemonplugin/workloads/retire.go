package workloads

import (
	"context"
	"fmt"

	"github.com/moby/moby/client"
)

// Retire takes a replica out of service and removes it, as a rolling
// update wants: it leaves its networks first, so that its names stop
// resolving to it while the others answer, then stops as docker stop
// does (its stop signal, then its grace period), then is removed as
// Remove removes it.
func (m *Manager) Retire(ctx context.Context, name string) error {
	m.mu.Lock()
	if err := m.notMigrating(name, "retired"); err != nil {
		m.mu.Unlock()
		return err
	}
	c, err := m.fleetInspect(ctx, name)
	m.mu.Unlock()
	if err != nil {
		return err
	}
	// The endpoints are the holder's when it joined one (a migration onto
	// a newer engine).
	carrier, err := m.Carrier(ctx, c)
	if err == nil && carrier.NetworkSettings != nil {
		for net := range carrier.NetworkSettings.Networks {
			_, _ = m.Engine.NetworkDisconnect(ctx, net, client.NetworkDisconnectOptions{Container: carrier.ID})
		}
	}
	if _, err := m.Engine.ContainerStop(ctx, c.ID, client.ContainerStopOptions{}); err != nil {
		return fmt.Errorf("stopping %s on %s: %w", name, m.Node, err)
	}
	return m.Remove(ctx, name)
}
