package migrate

import (
	"context"
	"fmt"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/daemonplugin/journal"
	"github.com/docker-fleet/fleet/daemonplugin/workloads"
)

// The engine restarts a container with a restart policy when its process
// ends, and a checkpoint ends it (or a commit kills it frozen): the source
// copy would run again beside its twin. So a migration holds the policy at
// "no" from just before the freeze; an undo gives it back, and the twin has
// had it all along (ReceiveHeader.HostConfig).

// holdRestart sets the container's restart policy to "no" for the
// migration; rec (journaled first) keeps the one to give back.
func (m *Migrator) holdRestart(ctx context.Context, rec journal.SourceRecord) error {
	if rec.Restart == nil {
		return nil
	}
	_, err := m.Engine.ContainerUpdate(ctx, rec.ContainerID, client.ContainerUpdateOptions{
		RestartPolicy: &container.RestartPolicy{Name: container.RestartPolicyDisabled}})
	if err != nil {
		return fmt.Errorf("holding its restart policy (%s) during the migration: %w", rec.Restart.Name, err)
	}
	return nil
}

// giveBackRestart gives a container that runs here again its own restart
// policy.
func (m *Migrator) giveBackRestart(ctx context.Context, rec journal.SourceRecord) error {
	if rec.Restart == nil {
		return nil
	}
	_, err := m.Engine.ContainerUpdate(ctx, rec.ContainerID, client.ContainerUpdateOptions{RestartPolicy: &container.RestartPolicy{
		Name: container.RestartPolicyMode(rec.Restart.Name), MaximumRetryCount: rec.Restart.MaxRetries}})
	if err != nil {
		return fmt.Errorf("giving back its restart policy %s: %w", rec.Restart.Name, err)
	}
	return nil
}

// restartToHold is the policy a migration of c holds (nil: none to hold).
func restartToHold(c container.InspectResponse) *journal.RestartPolicy {
	if c.HostConfig == nil || !workloads.Restarts(c.HostConfig.RestartPolicy) {
		return nil
	}
	p := c.HostConfig.RestartPolicy
	return &journal.RestartPolicy{Name: string(p.Name), MaxRetries: p.MaximumRetryCount}
}
