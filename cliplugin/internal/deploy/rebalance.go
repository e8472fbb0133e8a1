package deploy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/scheduler"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// checkParallel bounds the agents' checks of containers at once: each
// looks through a container's processes.
const checkParallel = 8

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
	DryRun  bool         `json:"dryRun,omitempty"`
	Results []MoveResult `json:"results,omitempty"`
}

// MoveResult is how one move of a plan ended: its migration, or why its
// container stays where it was.
type MoveResult struct {
	scheduler.Move
	Migration *api.MigrateResult `json:"migration,omitempty"`
	Error     string             `json:"error,omitempty"`

	err error
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
	return out, failedMoves(out.Results)
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
	errs := []error{failedMoves(out.Results)}
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
// planner sees them, each with why it cannot move if so. Those check
// takes that may move are checked by their agents, a few at once, for
// what CRIU cannot checkpoint.
func (d *Deployer) residents(ctx context.Context, inv fleet.Inventory, include, check func(node string, c api.FleetContainer) bool) ([]scheduler.Resident, error) {
	states := map[string]*swarmstore.ServiceState{} // nil: no stored definition
	var out []scheduler.Resident
	var toCheck []int
	for _, n := range inv {
		for _, c := range n.Ledger.Containers {
			if !include(n.Hostname, c) {
				continue
			}
			st, ok := states[c.Service]
			if !ok {
				got, err := swarmstore.LoadServiceState(ctx, d.Fleet.Manager, c.Service)
				switch {
				case errors.Is(err, swarmstore.ErrNoService):
				case err != nil:
					return nil, err
				default:
					st = &got
				}
				states[c.Service] = st
			}
			r := scheduler.Resident{Name: c.Name, Service: c.Service, Replica: c.Replica, Node: n.Hostname, Memory: c.Memory,
				Ports: scheduler.PortsHeld(n.Ledger, c.Name), Load: c.CPU}
			if c.Exclusive {
				r.Cpuset, _ = cpuset.Parse(c.Cpuset)
			}
			var svc spec.Service
			if st != nil {
				svc = st.Service
				r.Constraints = svc.Constraints
			}
			switch {
			case st == nil:
				// Without its constraints, any move could break them.
				r.Stays = "its service " + c.Service + " has no stored definition"
			case svc.Node != "":
				r.Stays = "placed with --node " + svc.Node
				// Its one node is all it may run on: it is even there.
				r.Constraints = append(slices.Clone(r.Constraints), spec.ConstraintHostname+"=="+svc.Node)
			case svc.NetworkMode == spec.HostNetwork:
				r.Stays = "on its node's own network (network_mode: host), which cannot migrate"
			case st.Update.Running():
				r.Stays = fmt.Sprintf("an update of %s has not ended: finish it (docker fleet update %s) or roll it back (--rollback) first", c.Service, c.Service)
			case c.State != "running":
				r.Stays = "it is " + cmp.Or(c.State, "not running") + ", and only a running container migrates"
			case check(n.Hostname, c):
				toCheck = append(toCheck, len(out))
			}
			out = append(out, r)
		}
	}
	if err := d.checkResidents(ctx, inv, out, toCheck); err != nil {
		return nil, err
	}
	return out, nil
}

// checkResidents asks the agents whether each of res[which] could be
// checkpointed now; one that could not stays, with the agent's reasons.
func (d *Deployer) checkResidents(ctx context.Context, inv fleet.Inventory, res []scheduler.Resident, which []int) error {
	sem := make(chan struct{}, checkParallel)
	var wg sync.WaitGroup
	for _, i := range which {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			node := inv.ByName(res[i].Node)
			got, err := node.Agent.Check(ctx, api.CheckRequest{Container: res[i].Name})
			switch {
			case err != nil:
				res[i].Stays = "its agent could not check it: " + err.Error()
			case !got.OK:
				res[i].Stays = cmp.Or(strings.Join(got.Problems, "; "), "its agent found it cannot be checkpointed")
			}
		})
	}
	wg.Wait()
	return ctx.Err()
}

// carryOut runs the moves as live migrations, in order, up to parallel at
// once and never two on one node at once: a move waits for every earlier
// move that shares a node with it, so that each finds its destination as
// the plan left it. A failed move leaves its container where it was (the
// migration protocol's own guarantee); the others go on. Once ctx ends,
// no move starts.
func (d *Deployer) carryOut(ctx context.Context, moves []scheduler.Move, parallel int, onEvent func(string, api.MigrateEvent)) []MoveResult {
	parallel = max(parallel, 1)
	if onEvent == nil {
		onEvent = func(string, api.MigrateEvent) {}
	}
	out := make([]MoveResult, len(moves))
	const (
		waiting = iota
		running
		finished
	)
	state := make([]int, len(moves))
	ended := make(chan int)
	busy := 0
	shares := func(a, b scheduler.Move) bool {
		return a.From == b.From || a.From == b.To || a.To == b.From || a.To == b.To
	}
	ready := func(i int) bool {
		for j := range i {
			if state[j] != finished && shares(moves[j], moves[i]) {
				return false
			}
		}
		return true
	}
	for {
		for i := range moves {
			if busy >= parallel || ctx.Err() != nil {
				break
			}
			if state[i] != waiting || !ready(i) {
				continue
			}
			state[i] = running
			busy++
			go func() {
				m := moves[i]
				res, err := d.migrate(ctx, m.Container, m.From, m.To, func(ev api.MigrateEvent) { onEvent(m.Container, ev) })
				out[i] = MoveResult{Move: m, Migration: res, err: err}
				if err != nil {
					out[i].Error = err.Error()
				}
				ended <- i
			}()
		}
		if busy == 0 {
			break
		}
		state[<-ended] = finished
		busy--
	}
	for i, m := range moves {
		if state[i] == waiting {
			err := fmt.Errorf("not started: %w", context.Cause(ctx))
			out[i] = MoveResult{Move: m, Error: err.Error(), err: err}
		}
	}
	return out
}

// failedMoves is an error naming each move that failed, or nil; the
// migrations' own errors are kept in it (errdefs kinds and all).
func failedMoves(results []MoveResult) error {
	var failed moveErrors
	for _, r := range results {
		if r.err != nil {
			failed = append(failed, fmt.Errorf("%s (%s to %s): %w", r.Container, r.From, r.To, r.err))
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d moves failed, each container staying where it was: %w", len(failed), len(results), failed)
}

// moveErrors are errors of several moves, written on one line.
type moveErrors []error

func (e moveErrors) Error() string {
	var parts []string
	for _, err := range e {
		parts = append(parts, err.Error())
	}
	return strings.Join(parts, "; ")
}

func (e moveErrors) Unwrap() []error { return e }
