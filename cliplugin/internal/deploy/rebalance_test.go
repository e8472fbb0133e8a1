package deploy

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/scheduler"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// createOn makes services with every node but on drained for the while:
// their replicas all land there, yet are placed by the scheduler (not
// pinned with a node).
func (f *fakeFleet) createOn(t *testing.T, on string, svcs ...spec.Service) {
	t.Helper()
	for _, n := range f.Nodes {
		if n.Swarm.Hostname != on {
			n.Swarm.Availability = "drain"
		}
	}
	f.create(t, svcs...)
	for _, n := range f.Nodes {
		n.Swarm.Availability = "active"
	}
}

// perNode counts the replicas of svc on each node, h1 first.
func (f *fakeFleet) perNode(t *testing.T, svc string) []int {
	t.Helper()
	out := make([]int, len(f.Nodes))
	for i, n := range f.Nodes {
		for _, name := range n.Containers() {
			if c, _ := n.Container(name); c.Service == svc {
				out[i]++
			}
		}
	}
	return out
}

// moved are the plan's moves as "web.6 h1>h2".
func moved(r *Rebalanced) []string {
	var out []string
	for _, m := range r.Moves {
		out = append(out, fmt.Sprintf("%s %s>%s", m.Container, m.From, m.To))
	}
	return out
}

// events collects the migration events of each container.
type events struct {
	mu  sync.Mutex
	got map[string][]api.MigrateEvent
}

func (e *events) on(name string, ev api.MigrateEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.got == nil {
		e.got = map[string][]api.MigrateEvent{}
	}
	e.got[name] = append(e.got[name], ev)
}

func TestRebalanceSpreadsLive(t *testing.T) {
	ctx := context.Background()
	f := newFakeFleet(t, 3, 8)
	f.createOn(t, "h1", service("web", 6, 1))
	assert.Assert(t, is.DeepEqual(f.perNode(t, "web"), []int{6, 0, 0}))
	before := f.containers(t)

	dry, err := f.d.Rebalance(ctx, RebalanceOptions{DryRun: true}, nil)
	assert.NilError(t, err)
	assert.Check(t, dry.DryRun)
	assert.Check(t, is.Equal(dry.Strategy, spec.Spread))
	assert.Check(t, is.DeepEqual(moved(dry), []string{"web.6 h1>h2", "web.5 h1>h3", "web.4 h1>h2", "web.3 h1>h3"}))
	assert.Check(t, is.Len(dry.Results, 0))
	assert.Check(t, is.DeepEqual(f.containers(t), before), "a dry run changes nothing")
	assert.Check(t, is.Equal(f.Node("h1").Calls("Migrate"), 0))

	var ev events
	res, err := f.d.Rebalance(ctx, RebalanceOptions{Parallel: 2}, ev.on)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(moved(res), moved(dry)), "the plan carried out is the one shown")
	assert.Check(t, is.DeepEqual(f.perNode(t, "web"), []int{2, 2, 2}))
	assert.Assert(t, is.Len(res.Results, 4))
	for _, r := range res.Results {
		assert.Check(t, is.Equal(r.Error, ""))
		assert.Assert(t, r.Migration != nil, r.Container)
		assert.Check(t, is.Equal(r.Migration.To, r.To))
		assert.Check(t, is.Equal(f.nodeOf(t, r.Container).Swarm.Hostname, r.To))
		assert.Check(t, is.Equal(ev.got[r.Container][0].Phase, api.PhaseStart), "progress per container")
		hist, err := f.d.Fleet.History(ctx, r.Container)
		assert.NilError(t, err)
		assert.Check(t, is.Len(hist, 1), "each migration is recorded")
	}
	assert.Check(t, is.Equal(f.heldCores(t), 6), "cores move with the replicas")

	again, err := f.d.Rebalance(ctx, RebalanceOptions{}, nil)
	assert.NilError(t, err)
	assert.Check(t, is.Len(again.Moves, 0), "a second run has nothing to do")
}

func TestRebalanceLeavesOutWhatCannotMove(t *testing.T) {
	ctx := context.Background()
	f := newFakeFleet(t, 3, 9) // eight held, one shared
	pinned := service("db", 2, 1)
	pinned.Node = "h1"
	host := service("agent", 1, 0)
	host.NetworkMode = spec.HostNetwork
	f.createOn(t, "h1", service("web", 6, 1), pinned, host)
	f.Node("h1").Uncheckpointable("web.6", "io_uring in use (pid 7): CRIU cannot checkpoint it")
	f.Node("h1").Change("web.5", func(c *api.FleetContainer) { c.State = "exited" })

	res, err := f.d.Rebalance(ctx, RebalanceOptions{}, nil)
	assert.NilError(t, err)
	why := map[string]string{}
	for _, l := range res.LeftOut {
		why[l.Container] = l.Why
	}
	assert.Check(t, is.DeepEqual(why, map[string]string{
		"agent.1": "on its node's own network (network_mode: host), which cannot migrate",
		"db.1":    "placed with --node h1",
		"db.2":    "placed with --node h1",
		"web.5":   "it is exited, and only a running container migrates",
		"web.6":   "io_uring in use (pid 7): CRIU cannot checkpoint it",
	}))
	assert.Check(t, is.DeepEqual(f.perNode(t, "web"), []int{2, 2, 2}), "the four others spread, two that stay on h1")
	assert.Check(t, is.DeepEqual(f.perNode(t, "db"), []int{2, 0, 0}))
	assert.Check(t, is.DeepEqual(f.perNode(t, "agent"), []int{1, 0, 0}))
	assert.Check(t, is.Equal(f.Node("h1").Calls("Check"), 5), "the agent checks every running candidate, and those only")
}

func TestRebalanceAFailedMoveLeavesItsContainer(t *testing.T) {
	ctx := context.Background()
	f := newFakeFleet(t, 3, 8)
	f.createOn(t, "h1", service("web", 6, 1))
	// The second migration off h1 fails, changing nothing.
	f.Node("h1").Fail("Migrate", 2, errdefs.ErrUnknown.WithMessage("criu dump failed: it keeps running on h1"))

	res, err := f.d.Rebalance(ctx, RebalanceOptions{}, nil)
	assert.Check(t, is.ErrorContains(err, "1 of 4 moves failed, each container staying where it was: web.5 (h1 to h3): criu dump failed"))
	assert.Check(t, errdefs.IsUnknown(err), "the migration's kind is kept")
	assert.Assert(t, is.Len(res.Results, 4))
	assert.Check(t, is.Equal(res.Results[1].Container, "web.5"))
	assert.Check(t, is.Contains(res.Results[1].Error, "criu dump failed"))
	assert.Check(t, is.Equal(f.nodeOf(t, "web.5").Swarm.Hostname, "h1"), "it stays where it was")
	for _, i := range []int{0, 2, 3} {
		r := res.Results[i]
		assert.Check(t, is.Equal(r.Error, ""), r.Container)
		assert.Check(t, is.Equal(f.nodeOf(t, r.Container).Swarm.Hostname, r.To), "the others go on")
	}
	assert.Check(t, is.DeepEqual(f.perNode(t, "web"), []int{3, 2, 1}))

	// Run again, it finishes the job.
	res, err = f.d.Rebalance(ctx, RebalanceOptions{}, nil)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(moved(res), []string{"web.5 h1>h3"}))
}

func TestRebalanceMovesAContainerFromWhereThePlanSawIt(t *testing.T) {
	ctx := context.Background()
	f := newFakeFleet(t, 3, 8)
	f.createOn(t, "h1", service("web", 3, 1))
	// Planned from h1, web.3 was moved by another hand meanwhile: it stays
	// where that took it.
	_, err := f.d.Migrate(ctx, "web.3", "h2", func(api.MigrateEvent) {})
	assert.NilError(t, err)
	res := f.d.carryOut(ctx, []scheduler.Move{{Container: "web.3", From: "h1", To: "h3"}}, 1, nil)
	assert.Check(t, errdefs.IsFailedPrecondition(res[0].Err()))
	assert.Check(t, is.Equal(res[0].Error, "web.3 runs on h2 now, not on h1 as planned: it stays there (plan again to move it)"))
	assert.Check(t, is.Equal(f.nodeOf(t, "web.3").Swarm.Hostname, "h2"))
}

// watch sees the migrations of a fleet: how many run at once at most, and
// any two that touch one node at once.
type watch struct {
	mu      sync.Mutex
	busy    map[string]string // node → the migration on it
	running int
	most    int
	clashes []string
}

func (w *watch) enter(name, from, to string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range []string{from, to} {
		if other := w.busy[n]; other != "" {
			w.clashes = append(w.clashes, fmt.Sprintf("%s and %s on %s", other, name, n))
		}
		w.busy[n] = name
	}
	w.running++
	w.most = max(w.most, w.running)
}

func (w *watch) leave(from, to string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.busy, from)
	delete(w.busy, to)
	w.running--
}

// watchedAgent is a node's agent whose migrations (it the source) are
// watched, each lasting a little, long enough to overlap.
type watchedAgent struct {
	fleet.Agent
	node string
	w    *watch
}

func (a watchedAgent) Migrate(ctx context.Context, req api.MigrateRequest, onEvent func(api.MigrateEvent)) (*api.MigrateResult, error) {
	a.w.enter(req.Container, a.node, req.To)
	defer a.w.leave(a.node, req.To)
	time.Sleep(30 * time.Millisecond)
	return a.Agent.Migrate(ctx, req, onEvent)
}

func TestRebalanceParallelMovesNeverShareANode(t *testing.T) {
	ctx := context.Background()
	f := newFakeFleet(t, 4, 8)
	f.createOn(t, "h1", service("a", 4, 1))
	f.createOn(t, "h3", service("b", 4, 1))
	w := &watch{busy: map[string]string{}}
	f.d.Inventory = func(ctx context.Context) (fleet.Inventory, error) {
		inv, err := f.Fleet.Inventory(ctx)
		for _, n := range inv {
			n.Agent = watchedAgent{Agent: n.Agent, node: n.Hostname, w: w}
		}
		return inv, err
	}

	res, err := f.d.Rebalance(ctx, RebalanceOptions{Parallel: 4}, nil)
	assert.NilError(t, err)
	assert.Check(t, is.Len(res.Results, 6))
	assert.Check(t, is.Len(w.clashes, 0), "%v", w.clashes)
	assert.Check(t, w.most >= 2, "moves between disjoint pairs run at once: %v", moved(res))
	assert.Check(t, w.most <= 2, "four nodes hold two moves at once at most")
	assert.Check(t, is.DeepEqual(f.perNode(t, "a"), []int{1, 1, 1, 1}))
	assert.Check(t, is.DeepEqual(f.perNode(t, "b"), []int{1, 1, 1, 1}))

	// One at a time unless asked.
	f.createOn(t, "h2", service("c", 4, 1))
	w.most = 0
	_, err = f.d.Rebalance(ctx, RebalanceOptions{}, nil)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(w.most, 1))
}

func TestRebalanceBinpackEmptiesNodes(t *testing.T) {
	ctx := context.Background()
	f := newFakeFleet(t, 3, 8)
	f.create(t, service("web", 3, 1))
	assert.Assert(t, is.DeepEqual(f.perNode(t, "web"), []int{1, 1, 1}))
	res, err := f.d.Rebalance(ctx, RebalanceOptions{Strategy: spec.Binpack}, nil)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(moved(res), []string{"web.1 h1>h2", "web.3 h3>h2"}))
	assert.Check(t, is.DeepEqual(f.perNode(t, "web"), []int{0, 3, 0}))
	again, err := f.d.Rebalance(ctx, RebalanceOptions{Strategy: spec.Binpack}, nil)
	assert.NilError(t, err)
	assert.Check(t, is.Len(again.Moves, 0))
}

func TestRebalanceRefuses(t *testing.T) {
	ctx := context.Background()
	f := newFakeFleet(t, 3, 8)
	f.createOn(t, "h1", service("web", 4, 1), service("api", 3, 1))

	_, err := f.d.Rebalance(ctx, RebalanceOptions{Strategy: "random"}, nil)
	assert.Check(t, errdefs.IsInvalidArgument(err))
	_, err = f.d.Rebalance(ctx, RebalanceOptions{Services: []string{"nope"}}, nil)
	assert.Check(t, is.ErrorIs(err, swarmstore.ErrNoService))

	// A service whose update has not ended: refused by name, left out of
	// the whole fleet's plan.
	assert.NilError(t, swarmstore.SetUpdate(ctx, f.swarm, "api", swarmstore.Update{State: swarmstore.UpdatePaused, From: 0, To: 1}))
	_, err = f.d.Rebalance(ctx, RebalanceOptions{Services: []string{"api"}}, nil)
	assert.Check(t, errdefs.IsConflict(err))
	assert.Check(t, is.ErrorContains(err, "cannot rebalance api: an update of it has not ended"))
	res, err := f.d.Rebalance(ctx, RebalanceOptions{DryRun: true}, nil)
	assert.NilError(t, err)
	assert.Check(t, is.Len(res.LeftOut, 3))
	assert.Check(t, is.Contains(res.LeftOut[0].Why, "an update of api has not ended"))
	assert.Check(t, is.Len(res.Moves, 2), "web alone: %v", moved(res))

	// Only the services asked for move.
	assert.NilError(t, swarmstore.SetUpdate(ctx, f.swarm, "api", swarmstore.Update{State: swarmstore.UpdateCompleted, From: 0, To: 1}))
	res, err = f.d.Rebalance(ctx, RebalanceOptions{Services: []string{"api"}}, nil)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(moved(res), []string{"api.3 h1>h2", "api.2 h1>h3"}))
	assert.Check(t, is.DeepEqual(f.perNode(t, "web"), []int{4, 0, 0}))

	// Counting on a node that does not answer would be a guess.
	f.Node("h2").SetDown(errdefs.ErrUnavailable.WithMessage("connection refused"))
	_, err = f.d.Rebalance(ctx, RebalanceOptions{}, nil)
	assert.Check(t, errdefs.IsUnavailable(err))
	assert.Check(t, is.ErrorContains(err, "cannot count the fleet's replicas: node h2: connection refused"))
}

func TestDrainAndActivate(t *testing.T) {
	ctx := context.Background()
	f := newFakeFleet(t, 3, 8)
	f.withSwarmNodes()
	db := service("db", 1, 1)
	db.Node = "h3"
	f.create(t, service("web", 3, 1), db)
	assert.Assert(t, is.DeepEqual(f.perNode(t, "web"), []int{1, 1, 1}))
	availability := func(h string) string {
		nodes, err := swarmstore.Nodes(ctx, f.swarm)
		assert.NilError(t, err)
		return nodes[slices.IndexFunc(nodes, func(n swarmstore.Node) bool { return n.Hostname == h })].Availability
	}

	var ev events
	res, err := f.d.Drain(ctx, []string{"h3"}, 2, ev.on)
	assert.Check(t, errdefs.IsFailedPrecondition(err))
	assert.Check(t, is.ErrorContains(err, "h3 drained, but 1 fleet container(s) stay: db.1 on h3 (placed with --node h3); move them"))
	assert.Check(t, is.Equal(availability("h3"), "drain"))
	assert.Check(t, is.DeepEqual(res.Drained, []string{"h3"}))
	assert.Check(t, is.DeepEqual(moved(res), []string{"web.3 h3>h1"}))
	assert.Check(t, is.Equal(res.Moves[0].Why, "empties h3"))
	assert.Check(t, is.Len(ev.got["web.3"], 2))
	assert.Check(t, is.DeepEqual(f.Node("h3").Containers(), []string{"db.1"}))

	// Nothing new goes to a drained node: not a scale, not a rebalance.
	_, err = f.d.Scale(ctx, []ScaleTarget{{Service: "web", Replicas: 3, Add: true}})
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(f.perNode(t, "web"), []int{3, 3, 0}))
	rb, err := f.d.Rebalance(ctx, RebalanceOptions{}, nil)
	assert.NilError(t, err)
	assert.Check(t, is.Len(rb.Moves, 0))

	// Active again, it takes work: the scheduler's spread picks it first,
	// and rebalance evens web out onto it.
	names, err := f.d.Activate(ctx, []string{"h3"})
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(names, []string{"h3"}))
	assert.Check(t, is.Equal(availability("h3"), "active"))
	rb, err = f.d.Rebalance(ctx, RebalanceOptions{}, nil)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(f.perNode(t, "web"), []int{2, 2, 2}), "%v", moved(rb))

	// A drain with nothing that stays ends well; again, it finds nothing.
	_, err = f.d.Drain(ctx, []string{"h2"}, 1, nil)
	assert.NilError(t, err)
	assert.Check(t, is.Len(f.Node("h2").Containers(), 0))
	res, err = f.d.Drain(ctx, []string{"h2"}, 1, nil)
	assert.NilError(t, err)
	assert.Check(t, is.Len(res.Moves, 0))

	_, err = f.d.Drain(ctx, []string{"h9"}, 1, nil)
	assert.Check(t, errdefs.IsNotFound(err))
	assert.Check(t, is.ErrorContains(err, `no node named "h9"`))
}

func TestDrainAFailedMoveStays(t *testing.T) {
	ctx := context.Background()
	f := newFakeFleet(t, 3, 8)
	f.createOn(t, "h2", service("web", 3, 1))
	f.withSwarmNodes()
	f.Node("h2").Fail("Migrate", 1, errdefs.ErrUnknown.WithMessage("h1 went away"))
	res, err := f.d.Drain(ctx, []string{"h2"}, 1, nil)
	assert.Check(t, is.ErrorContains(err, "1 of 3 moves failed"))
	assert.Check(t, is.Len(res.Results, 3))
	assert.Check(t, is.DeepEqual(f.Node("h2").Containers(), []string{res.Results[0].Container}))
}
