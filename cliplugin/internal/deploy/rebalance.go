package deploy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/moves"
	"github.com/docker-fleet/fleet/shared/scheduler"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// RebalanceOptions are what rebalance is asked.
type RebalanceOptions struct {
	// Services limits the plan to their replicas (none: every service).
	Services []string
	// Strategy is spec.Spread (the default) or spec.Binpack.
	Strategy string
	// DryRun plans and changes nothing.
	DryRun bool
	// MaxMoves caps the plan (0: no cap).
	MaxMoves int
	// Parallel is how many moves may run at once (at least one), never
	// two on one node.
	Parallel int
}

// Rebalanced is what rebalance or drain planned and, unless a dry run,
// how each move ended.
type Rebalanced struct {
	Strategy string `json:"strategy,omitempty"`
	// Drained are the nodes drain set to drain.
	Drained []string `json:"drained,omitempty"`
	scheduler.Plan
	DryRun  bool           `json:"dryRun,omitempty"`
	Results []moves.Result `json:"results,omitempty"`
}

// Rebalance plans the moves that bring the fleet to the strategy's goal
// (scheduler.Rebalance) and carries them out as live migrations. Every
// candidate is checked by its agent first: one it finds cannot be
// checkpointed is left out with its reason, as are containers of a
// service placed with --node or on its node's network. A move that fails
// leaves its container where it was and the others go on; the error then
// names each.
func (d *Deployer) Rebalance(ctx context.Context, o RebalanceOptions, onEvent func(container string, ev api.MigrateEvent)) (*Rebalanced, error) {
	strategy := cmp.Or(o.Strategy, spec.Spread)
	if strategy != spec.Spread && strategy != spec.Binpack {
		return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("strategy %q: use %s or %s", strategy, spec.Spread, spec.Binpack))
	}
	if o.MaxMoves < 0 {
		return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("max moves %d: give 0 (no cap) or more", o.MaxMoves))
	}
	asked := map[string]bool{}
	for _, s := range o.Services {
		if _, err := swarmstore.LoadService(ctx, d.Fleet.Manager, s); err != nil {
			return nil, err
		}
		if err := refuseWhileUpdating(ctx, d, s, "rebalance"); err != nil {
			return nil, err
		}
		asked[s] = true
	}
	inv, err := d.inventory(ctx)
	if err != nil {
		return nil, err
	}
	// Evening out replicas on nodes that do not answer would be a guess.
	if err := inv.Unreachable(); err != nil {
		return nil, fmt.Errorf("cannot count the fleet's replicas: %w (bring its agent back, or take the node out with docker fleet leave --force)", err)
	}
	ofAsked := func(_ string, c api.FleetContainer) bool { return len(asked) == 0 || asked[c.Service] }
	residents, err := d.residents(ctx, inv, ofAsked, ofAsked)
	if err != nil {
		return nil, err
	}
	plan, err := scheduler.Rebalance(schedulerNodes(inv), residents, strategy, o.MaxMoves)
	if err != nil {
		return nil, errdefs.ErrInvalidArgument.WithMessage(err.Error())
	}
	out := &Rebalanced{Strategy: strategy, Plan: plan, DryRun: o.DryRun}
	if o.DryRun || len(plan.Moves) == 0 {
		return out, nil
	}
	d.say("rebalance (%s): %d move(s), up to %d at once", strategy, len(plan.Moves), max(o.Parallel, 1))
	out.Results = d.carryOut(ctx, plan.Moves, o.Parallel, onEvent)
	return out, moves.Failed(out.Results)
}

// Drain sets the nodes' swarm availability to drain, as `docker node
// update --availability drain` does, so that nothing new is placed there,
// then moves every fleet container off them live, each to the other node
// with the fewest replicas of its service that fits (scheduler.Evacuate).
// The nodes stay in the fleet. A container that cannot migrate stays,
// and so does one whose move fails: the error names each.
func (d *Deployer) Drain(ctx context.Context, names []string, parallel int, onEvent func(container string, ev api.MigrateEvent)) (*Rebalanced, error) {
	nodes, err := d.findNodes(ctx, names)
	if err != nil {
		return nil, err
	}
	var hosts []string
	for _, n := range nodes {
		changed, err := swarmstore.SetAvailability(ctx, d.Fleet.Manager, n.ID, swarm.NodeAvailabilityDrain)
		if err != nil {
			return nil, err
		}
		if changed {
			d.say("%s: drained: nothing new is placed there", n.Hostname)
		}
		hosts = append(hosts, n.Hostname)
	}
	// Read after the drain: the drained nodes take nothing from now on.
	inv, err := d.inventory(ctx)
	if err != nil {
		return nil, err
	}
	for _, h := range hosts {
		if st := inv.ByName(h); st != nil && st.Err != nil {
			return nil, fmt.Errorf("%s is drained, but its agent does not answer, so its containers stay on it: %w (run drain again once it answers)", h, st.Err)
		}
	}
	onDrained := func(node string, _ api.FleetContainer) bool { return slices.Contains(hosts, node) }
	// Every container counts where it runs (a service's replicas spread
	// over the others); only those on the drained nodes are checked.
	all := func(string, api.FleetContainer) bool { return true }
	residents, err := d.residents(ctx, inv, all, onDrained)
	if err != nil {
		return nil, err
	}
	out := &Rebalanced{Drained: hosts, Plan: scheduler.Evacuate(schedulerNodes(inv), residents, hosts)}
	if n := len(out.Moves); n > 0 {
		d.say("%s: moving %d fleet container(s) off, up to %d at once", strings.Join(hosts, ", "), n, max(parallel, 1))
	}
	out.Results = d.carryOut(ctx, out.Moves, parallel, onEvent)
	errs := []error{moves.Failed(out.Results)}
	if len(out.LeftOut) > 0 {
		var stay []string
		for _, l := range out.LeftOut {
			stay = append(stay, fmt.Sprintf("%s on %s (%s)", l.Container, l.Node, l.Why))
		}
		errs = append(errs, errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf("%s drained, but %d fleet container(s) stay: %s; move them (docker fleet migrate CONTAINER --to NODE) or remove them (docker fleet rm CONTAINER)",
			strings.Join(hosts, ", "), len(stay), strings.Join(stay, "; "))))
	}
	return out, errors.Join(errs...)
}

// Activate sets the nodes' swarm availability back to active: the
// scheduler places containers there again. It moves nothing back
// (rebalance does). It returns the nodes' hostnames.
func (d *Deployer) Activate(ctx context.Context, names []string) ([]string, error) {
	nodes, err := d.findNodes(ctx, names)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range nodes {
		changed, err := swarmstore.SetAvailability(ctx, d.Fleet.Manager, n.ID, swarm.NodeAvailabilityActive)
		if err != nil {
			return out, err
		}
		if changed {
			d.say("%s: active: containers are placed there again", n.Hostname)
		}
		out = append(out, n.Hostname)
	}
	return out, nil
}

// findNodes finds the swarm nodes named (by hostname or ID prefix), each
// once, before anything changes.
func (d *Deployer) findNodes(ctx context.Context, names []string) ([]swarmstore.Node, error) {
	all, err := swarmstore.Nodes(ctx, d.Fleet.Manager)
	if err != nil {
		return nil, err
	}
	var out []swarmstore.Node
	for _, name := range names {
		n, err := swarmstore.FindNode(all, name)
		if err != nil {
			return nil, fmt.Errorf("%w: docker fleet describe lists the nodes", err)
		}
		if !slices.ContainsFunc(out, func(o swarmstore.Node) bool { return o.ID == n.ID }) {
			out = append(out, n)
		}
	}
	return out, nil
}

// residents are the fleet's containers that include takes, as the
// planner sees them (moves.Residents); those check takes are checked by
// their agents.
func (d *Deployer) residents(ctx context.Context, inv fleet.Inventory, include, check func(node string, c api.FleetContainer) bool) ([]scheduler.Resident, error) {
	nodes := make([]moves.Node, 0, len(inv))
	for _, n := range inv {
		nodes = append(nodes, moves.Node{Hostname: n.Hostname, Ledger: n.Ledger})
	}
	return moves.Residents(ctx, d.Fleet.Manager, nodes, include, check, func(ctx context.Context, node string, req api.CheckRequest) (api.CheckResult, error) {
		return inv.ByName(node).Agent.Check(ctx, req)
	})
}

// carryOut runs the moves as live migrations (moves.CarryOut), each
// expected on the node the plan moves it from.
func (d *Deployer) carryOut(ctx context.Context, plan []scheduler.Move, parallel int, onEvent func(string, api.MigrateEvent)) []moves.Result {
	if onEvent == nil {
		onEvent = func(string, api.MigrateEvent) {}
	}
	return moves.CarryOut(ctx, plan, parallel, func(ctx context.Context, m scheduler.Move) (*api.MigrateResult, error) {
		return d.migrate(ctx, m.Container, m.From, m.To, func(ev api.MigrateEvent) { onEvent(m.Container, ev) })
	})
}
