package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/moves"
	"github.com/docker-fleet/fleet/shared/scheduler"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// agentWait bounds how long migrate waits for an agent that does not
// answer or makes way for its upgrade (init's handover takes seconds).
var agentWait = 30 * time.Second

// Migrate live-migrates a container to the node to, or to the node the
// scheduler picks. The source node's agent drives it, streaming straight to
// the destination's agent; progress comes back through onEvent. While an
// agent it needs is unavailable (being upgraded, or restarting) and nothing
// has started, it waits for it, up to agentWait.
func (d *Deployer) Migrate(ctx context.Context, name, to string, onEvent func(api.MigrateEvent)) (*api.MigrateResult, error) {
	return d.migrate(ctx, name, "", to, onEvent)
}

// migrate is Migrate of a container expected on the node from (""
// wherever it is): one a plan moves, which must not move it from
// elsewhere should it have moved since.
func (d *Deployer) migrate(ctx context.Context, name, from, to string, onEvent func(api.MigrateEvent)) (*api.MigrateResult, error) {
	deadline := time.Now().Add(agentWait)
	for waited := false; ; waited = true {
		res, started, err := d.migrateOnce(ctx, name, from, to, onEvent)
		if err == nil || started || !errdefs.IsUnavailable(err) || !time.Now().Before(deadline) {
			return res, err
		}
		if !waited {
			d.say("waiting up to %s for an agent: %v", agentWait, err)
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Second):
		}
	}
}

// migrateOnce is one attempt of Migrate; started says whether the source
// agent took the migration (then it is not tried again).
func (d *Deployer) migrateOnce(ctx context.Context, name, from, to string, onEvent func(api.MigrateEvent)) (_ *api.MigrateResult, started bool, _ error) {
	inv, c, src, err := d.locate(ctx, name)
	if err != nil {
		return nil, false, err
	}
	if from != "" && src.Hostname != from {
		return nil, false, errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf("%s runs on %s now, not on %s as planned: it stays there (plan again to move it)",
			c.Name, src.Hostname, from))
	}
	if err := refuseWhileUpdating(ctx, d, c.Service, "migrate a replica of"); err != nil {
		return nil, false, err
	}
	dst, err := destination(inv, c, src, to, d.constraintsOf(ctx, c.Service))
	if err != nil {
		return nil, false, err
	}
	req, err := moves.Announce(ctx, d.Fleet.Manager, c, src.Node, dst.Node, dst.Agent)
	if err != nil {
		return nil, false, err
	}
	id := req.ID
	start := api.MigrateEvent{Phase: api.PhaseStart, Message: "migration " + id + " of " + c.Name + " from " + src.Hostname + " to " + dst.Hostname}
	res, err := src.Agent.Migrate(ctx, req, func(ev api.MigrateEvent) {
		if !started {
			started = true
			onEvent(start)
		}
		onEvent(ev)
	})
	if err != nil {
		if ctx.Err() != nil && started {
			return nil, true, &Detached{ID: id, Container: c.Name}
		}
		return nil, started, err
	}
	d.record(ctx, *res)
	return res, true, nil
}

// Detached is a migration the CLI stopped following (interrupted): it goes
// on, driven by its source agent.
type Detached struct{ ID, Container string }

func (e *Detached) Error() string {
	return fmt.Sprintf("detached from migration %s of %s, which goes on: `docker fleet migrate --follow %s` shows how it ends (and records it)", e.ID, e.Container, e.ID)
}

// Follow follows a migration from its source agent, wherever that is, to
// its end, and records it.
func (d *Deployer) Follow(ctx context.Context, id string, onEvent func(api.MigrateEvent)) (*api.MigrateResult, error) {
	inv, err := d.inventory(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range inv {
		if n.Agent == nil || n.Err != nil {
			continue
		}
		res, err := n.Agent.Follow(ctx, id, onEvent)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		d.record(ctx, *res)
		return res, nil
	}
	if uerr := inv.Unreachable(); uerr != nil {
		return nil, fmt.Errorf("no node that answers knows migration %s (%v)", id, uerr)
	}
	return nil, fmt.Errorf("no node knows migration %s: a migration can be followed on its source node until an hour after it ends", id)
}

// record adds a finished migration to its container's history.
func (d *Deployer) record(ctx context.Context, res api.MigrateResult) {
	if err := d.Fleet.RecordMigration(context.WithoutCancel(ctx), res); err != nil {
		d.say("warning: %s moved, but its migration was not recorded: %v", res.Container, err)
	}
}

// locate finds a fleet container and its node in the fleet as it is now.
func (d *Deployer) locate(ctx context.Context, name string) (fleet.Inventory, api.FleetContainer, *fleet.NodeState, error) {
	inv, err := d.inventory(ctx)
	if err != nil {
		return nil, api.FleetContainer{}, nil, err
	}
	c, src, ok := inv.Find(name)
	if !ok {
		if uerr := inv.Unreachable(); uerr != nil {
			return nil, c, nil, fmt.Errorf("no fleet container %q on the nodes that answer (%w)", name, uerr)
		}
		return nil, c, nil, fmt.Errorf("no fleet container %q", name)
	}
	return inv, c, src, nil
}

// destination picks where c goes: the node asked for, or the scheduler's
// choice among the others; either must have its cores, memory and host
// ports free.
// constraintsOf are a service's placement constraints (none without a
// stored definition), which a migration's destination must meet too.
func (d *Deployer) constraintsOf(ctx context.Context, service string) []string {
	s, err := swarmstore.LoadService(ctx, d.Fleet.Manager, service)
	if err != nil {
		return nil
	}
	return s.Constraints
}

func destination(inv fleet.Inventory, c api.FleetContainer, src *fleet.NodeState, to string, constraints []string) (*fleet.NodeState, error) {
	sched := schedulerNodes(inv)
	for i := range sched {
		if sched[i].Name == src.Hostname {
			sched[i].Unusable = "the container is there"
		}
	}
	// Its host ports as its node gives them: a node where one is taken
	// would refuse it at prepare (an older agent reports none).
	req := scheduler.Request{Memory: c.Memory, Ports: scheduler.PortsHeld(src.Ledger, c.Name), Constraints: constraints}
	if c.Exclusive {
		set, _ := cpuset.Parse(c.Cpuset)
		req.Cores = len(set)
	}
	if to != "" {
		n, err := swarmstore.FindNode(inv.Nodes(), to)
		if err != nil {
			return nil, fmt.Errorf("--to: %w", err)
		}
		if n.Hostname == src.Hostname {
			return nil, fmt.Errorf("--to %s: %s already runs there", to, c.Name)
		}
		if st := inv.ByName(n.Hostname); st != nil && st.Err != nil {
			// Its kind tells Migrate whether to wait for it.
			return nil, fmt.Errorf("--to %s: %w", to, st.Err)
		}
		req.Node = n.Hostname
	}
	where, err := scheduler.Place(sched, req, 1)
	if err != nil {
		return nil, fmt.Errorf("no destination for %s: %w", c.Name, err)
	}
	return inv.ByName(where[0]), nil
}

// LeaveResult is what leave did.
type LeaveResult struct {
	Node     string              `json:"node"`
	Migrated []api.MigrateResult `json:"migrated"`
	Failed   map[string]string   `json:"failed,omitempty"`
	Left     bool                `json:"left"`
}

// Leave drains a node by live migration, then takes it out of the swarm and
// removes its agent. If a migration fails, the node stays (unless force).
func (d *Deployer) Leave(ctx context.Context, name string, force bool, onEvent func(string, api.MigrateEvent)) (*LeaveResult, error) {
	inv, err := d.inventory(ctx)
	if err != nil {
		return nil, err
	}
	n, err := swarmstore.FindNode(inv.Nodes(), name)
	if err != nil {
		// A dead worker the leader took out of the swarm: what ran on it
		// was relocated, and there is nothing left to drain.
		if down, derr := swarmstore.LoadDown(ctx, d.Fleet.Manager, name); derr == nil && down.Removed {
			return d.leaveRemoved(ctx, name)
		}
		return nil, err
	}
	node := inv.ByName(n.Hostname)
	if node.Role == "manager" {
		return nil, fmt.Errorf("%s is a swarm manager: leave works on workers (demote it first with `docker node demote %s`)", n.Hostname, n.Hostname)
	}
	if node.Err != nil && !force {
		return nil, fmt.Errorf("the agent of %s does not answer, so its containers cannot be moved: %w (--force removes the node anyway)", n.Hostname, node.Err)
	}
	res := &LeaveResult{Node: n.Hostname, Failed: map[string]string{}}
	if k := len(node.Ledger.Containers); k > 0 {
		d.say("%s: moving its %d fleet container(s) off, one at a time", n.Hostname, k)
	}
	for _, c := range node.Ledger.Containers {
		r, err := d.Migrate(ctx, c.Name, "", func(ev api.MigrateEvent) { onEvent(c.Name, ev) })
		if err != nil {
			res.Failed[c.Name] = err.Error()
			continue
		}
		res.Migrated = append(res.Migrated, *r)
	}
	if len(res.Failed) > 0 && !force {
		return res, fmt.Errorf("%d of %d migrations off %s failed, so it stays in the fleet with those containers (--force leaves anyway): %v",
			len(res.Failed), len(node.Ledger.Containers), n.Hostname, res.Failed)
	}
	if node.Agent != nil && node.Err == nil {
		d.say("%s: leaving the swarm, its agent removing itself", n.Hostname)
		if err := node.Agent.Leave(ctx, api.LeaveRequest{Force: force}); err != nil {
			return res, fmt.Errorf("%s: %w", n.Hostname, err)
		}
	}
	d.say("%s: waiting for the manager to see it down (up to 30s), then removing it", n.Hostname)
	if err := d.forget(ctx, n); err != nil {
		return res, err
	}
	res.Left = true
	// A node that had died and is gone for good is no longer held dead:
	// what ran on it runs elsewhere (relocated), and nothing is left to
	// fence.
	if err := swarmstore.ForgetDeath(ctx, d.Fleet.Manager, n.Hostname); err != nil {
		return res, err
	}
	// Gone from the swarm, its certificates go too: no agent takes them.
	if err := d.Fleet.Revoke(ctx, n.Hostname); err != nil {
		return res, err
	}
	return res, nil
}

// leaveRemoved has a dead node that the leader removed from the swarm
// leave the fleet for good: no longer held dead, its certificates revoked.
func (d *Deployer) leaveRemoved(ctx context.Context, name string) (*LeaveResult, error) {
	if err := swarmstore.ForgetDeath(ctx, d.Fleet.Manager, name); err != nil {
		return nil, err
	}
	if err := d.Fleet.Revoke(ctx, name); err != nil {
		return nil, err
	}
	return &LeaveResult{Node: name, Left: true}, nil
}

// forget waits for the manager to see the node down, then removes it.
func (d *Deployer) forget(ctx context.Context, n swarmstore.Node) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := d.Fleet.Manager.NodeRemove(ctx, n.ID, client.NodeRemoveOptions{})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			// It may never report down (an unreachable node): force it out.
			if _, ferr := d.Fleet.Manager.NodeRemove(ctx, n.ID, client.NodeRemoveOptions{Force: true}); ferr != nil {
				return fmt.Errorf("removing %s from the swarm: %w", n.Hostname, errors.Join(err, ferr))
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
