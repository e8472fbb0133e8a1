package migrate

import (
	"context"
	"fmt"
	"log"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/daemonplugin/journal"
	"github.com/docker-fleet/fleet/daemonplugin/workloads"
)

// The engine restarts a container with a restart policy when its process
// ends, and a checkpoint ends it (or a commit kills it frozen): the source
// copy would run again beside its twin. So a migration holds the source's
// policy at "no" from just before the freeze, and an undo gives it back.
// The twin is made with "no" too (workloads.CreateTwin), so that a fenced
// copy that dies is not started afresh by its engine and taken for the
// container, and gets the policy once it is the container: at the commit,
// or at once for a warm restore, whose source is dead.

// restartOf is the policy of a host configuration that a migration holds
// (nil: the engine restarts nothing).
func restartOf(hc *container.HostConfig) *journal.RestartPolicy {
	if hc == nil || !workloads.Restarts(hc.RestartPolicy) {
		return nil
	}
	return &journal.RestartPolicy{Name: string(hc.RestartPolicy.Name), MaxRetries: hc.RestartPolicy.MaximumRetryCount}
}

// setRestart gives container id the policy p; nil leaves it as it is.
func (m *Migrator) setRestart(ctx context.Context, id string, p *journal.RestartPolicy) error {
	if p == nil {
		return nil
	}
	_, err := m.Engine.ContainerUpdate(ctx, id, client.ContainerUpdateOptions{RestartPolicy: &container.RestartPolicy{
		Name: container.RestartPolicyMode(p.Name), MaximumRetryCount: p.MaxRetries}})
	if err != nil {
		return fmt.Errorf("restart policy %s: %w", p.Name, err)
	}
	return nil
}

// holdRestart sets the source container's restart policy to "no" for the
// migration; rec (journaled first) keeps the one to give back.
func (m *Migrator) holdRestart(ctx context.Context, rec journal.SourceRecord) error {
	if rec.Restart == nil {
		return nil
	}
	if err := m.setRestart(ctx, rec.ContainerID, &journal.RestartPolicy{Name: string(container.RestartPolicyDisabled)}); err != nil {
		return fmt.Errorf("holding its restart policy (%s) during the migration: %w", rec.Restart.Name, err)
	}
	return nil
}

// giveBackRestart gives a container that runs here again its own restart
// policy.
func (m *Migrator) giveBackRestart(ctx context.Context, rec journal.SourceRecord) error {
	if err := m.setRestart(ctx, rec.ContainerID, rec.Restart); err != nil {
		return fmt.Errorf("giving back its %w", err)
	}
	return nil
}

// takeRestart gives a twin that is now the container its policy; it runs
// either way, so a failure is told.
func (m *Migrator) takeRestart(ctx context.Context, id, name string, p *journal.RestartPolicy) {
	if err := m.setRestart(ctx, id, p); err != nil {
		log.Printf("%s runs on %s without its %v", name, m.Node, err)
	}
}
