package leader

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

func (a *fakeAgent) Check(_ context.Context, req api.CheckRequest) (api.CheckResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checks = append(a.checks, req.Container)
	if why, ok := a.uncheckable[req.Container]; ok {
		return api.CheckResult{Problems: []string{why}}, nil
	}
	return api.CheckResult{OK: true}, nil
}

func (a *fakeAgent) Expect(_ context.Context, e api.Expectation) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.expected == nil {
		a.expected = map[string]api.Expectation{}
	}
	a.expected[e.ID] = e
	return nil
}

// Migrate moves the container to the destination's fake, if that expects
// it from here.
func (a *fakeAgent) Migrate(_ context.Context, req api.MigrateRequest, _ func(api.MigrateEvent)) (*api.MigrateResult, error) {
	if a.block != nil {
		a.blocked.Add(1)
		<-a.block
	}
	dst := a.peers[req.To]
	dst.mu.Lock()
	exp, ok := dst.expected[req.ID]
	dst.mu.Unlock()
	if !ok || exp.From != a.node || exp.Container != req.Container {
		return nil, fmt.Errorf("%s does not expect %s from %s", req.To, req.Container, a.node)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failMigrate != nil {
		return nil, a.failMigrate
	}
	i := slices.IndexFunc(a.containers, func(c api.FleetContainer) bool { return c.Name == req.Container })
	if i < 0 {
		return nil, errors.New("no such container")
	}
	c := a.containers[i]
	a.containers = slices.Delete(a.containers, i, i+1)
	c.Node = req.To
	dst.mu.Lock()
	dst.containers = append(dst.containers, c)
	dst.mu.Unlock()
	return &api.MigrateResult{Container: c.Name, From: a.node, To: req.To, Downtime: 0.1, Time: time.Now().Format(time.RFC3339Nano)}, nil
}

// newCrowdedFleet is h1, h2 and h3 with the four replicas of api (no
// exclusive cores) on h1, and the automatic rebalance every every, at
// most two moves each time.
func newCrowdedFleet(t *testing.T, every string) *fleetFixture {
	t.Helper()
	ctx := context.Background()
	fx := newFleet(t, "0s")
	assert.NilError(t, swarmstore.UpdateLabels(ctx, fx.sw, labels.CAConfigName, func(l map[string]string) {
		if every != "" {
			l[labels.RebalanceEvery] = every
		}
	}))
	assert.NilError(t, swarmstore.SaveService(ctx, fx.sw, spec.Service{Name: "api", Image: "img", Replicas: 4, Memory: 16 << 20}))
	for i := 1; i <= 4; i++ {
		fx.agents["h1"].containers = append(fx.agents["h1"].containers, api.FleetContainer{
			Name: "api." + strconv.Itoa(i), Service: "api", Replica: i, Node: "h1", State: "running", Memory: 16 << 20})
	}
	for _, a := range fx.agents {
		a.peers = fx.agents
	}
	return fx
}

// history is a container's recorded migrations.
func (fx *fleetFixture) history(t *testing.T, container string) []api.Migration {
	t.Helper()
	h, err := swarmstore.History(context.Background(), fx.sw, container)
	assert.NilError(t, err)
	return h
}

// count is how many replicas of service each node runs.
func (fx *fleetFixture) count(service string) map[string]int {
	out := map[string]int{}
	for h, a := range fx.agents {
		a.mu.Lock()
		for _, c := range a.containers {
			if c.Service == service {
				out[h]++
			}
		}
		a.mu.Unlock()
	}
	return out
}

// settled waits for the leader's moves in the background to end.
func settled(t *testing.T, l *Leader) {
	t.Helper()
	for range 200 {
		if !l.auto.running() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the automatic rebalance's moves did not end")
}

func TestAutoRebalanceSpreadsAFewMovesAtATime(t *testing.T) {
	ctx := context.Background()
	fx := newCrowdedFleet(t, "20ms")
	l := fx.leader()
	assert.NilError(t, l.Round(ctx))
	settled(t, l)
	assert.Check(t, is.DeepEqual(fx.count("api"), map[string]int{"h1": 2, "h2": 1, "h3": 1}), "two moves, the most allowed")
	hist := fx.history(t, "api.4")
	assert.Assert(t, is.Len(hist, 1), "each move is recorded (a fleet event)")
	assert.Check(t, is.Contains(hist[0].By, "the automatic rebalance: evens out api"))

	// Spread: the next rounds, once due, find nothing to do.
	time.Sleep(30 * time.Millisecond)
	assert.NilError(t, l.Round(ctx))
	settled(t, l)
	assert.Check(t, is.DeepEqual(fx.count("api"), map[string]int{"h1": 2, "h2": 1, "h3": 1}))
}

func TestAutoRebalanceIsOffUnlessAsked(t *testing.T) {
	ctx := context.Background()
	fx := newCrowdedFleet(t, "")
	l := fx.leader()
	assert.NilError(t, l.Round(ctx))
	settled(t, l)
	assert.Check(t, is.DeepEqual(fx.count("api"), map[string]int{"h1": 4}))
	assert.Check(t, is.Len(fx.agents["h1"].checks, 0), "nothing asked of the agents")
}

func TestAutoRebalanceWaitsWhileAnAgentIsSilent(t *testing.T) {
	ctx := context.Background()
	fx := newCrowdedFleet(t, "20ms")
	fx.agents["h3"].down = true // its engine still ready in the swarm
	l := fx.leader()
	assert.NilError(t, l.Round(ctx))
	settled(t, l)
	assert.Check(t, is.DeepEqual(fx.count("api")["h1"], 4), "replicas that cannot be counted are not evened out")
}

func TestAutoRebalanceLeavesOutWhatItsAgentCannotCheckpoint(t *testing.T) {
	ctx := context.Background()
	fx := newCrowdedFleet(t, "20ms")
	fx.agents["h1"].uncheckable = map[string]string{"api.4": "io_uring", "api.3": "io_uring"}
	l := fx.leader()
	assert.NilError(t, l.Round(ctx))
	settled(t, l)
	assert.Check(t, is.DeepEqual(fx.count("api"), map[string]int{"h1": 2, "h2": 1, "h3": 1}))
	assert.Check(t, is.DeepEqual(fx.where("api.4"), []string{"h1"}))
	assert.Check(t, is.DeepEqual(fx.where("api.3"), []string{"h1"}))
}

func TestAutoRebalanceFailedMoveLeavesItsContainer(t *testing.T) {
	ctx := context.Background()
	fx := newCrowdedFleet(t, "20ms")
	fx.agents["h1"].failMigrate = errors.New("criu dump failed")
	l := fx.leader()
	assert.NilError(t, l.Round(ctx))
	settled(t, l)
	assert.Check(t, is.DeepEqual(fx.count("api"), map[string]int{"h1": 4}))
	assert.Check(t, is.Len(fx.history(t, "api.4"), 0), "nothing recorded")
}

func TestAutoRebalanceLetsAMovedContainerSettle(t *testing.T) {
	ctx := context.Background()
	fx := newCrowdedFleet(t, "20ms")
	l := fx.leader()
	l.auto.justMoved("api.4")
	l.auto.justMoved("api.3")
	assert.NilError(t, l.Round(ctx))
	settled(t, l)
	assert.Check(t, is.DeepEqual(fx.count("api"), map[string]int{"h1": 2, "h2": 1, "h3": 1}))
	assert.Check(t, is.DeepEqual(fx.where("api.4"), []string{"h1"}), "moved lately, it settles")
	assert.Check(t, is.DeepEqual(fx.where("api.3"), []string{"h1"}), "moved lately, it settles")
}

// startBlocked is a crowded fleet whose leader has started a batch, its
// migrations held until block is closed.
func startBlocked(t *testing.T, every string) (*fleetFixture, *Leader, chan struct{}) {
	t.Helper()
	fx := newCrowdedFleet(t, every)
	block := make(chan struct{})
	fx.agents["h1"].block = block
	l := fx.leader()
	assert.NilError(t, l.Round(context.Background()))
	return fx, l, block
}

func TestAutoRebalanceStopsWhenNoLongerLeading(t *testing.T) {
	ctx := context.Background()
	fx, l, block := startBlocked(t, "20ms")
	for fx.agents["h1"].blocked.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// Leadership passes on while the first move runs: that move ends, no
	// other starts.
	fx.sw.mu.Lock()
	fx.sw.nodes[0].ManagerStatus.Leader = false
	fx.sw.mu.Unlock()
	assert.NilError(t, l.Round(ctx))
	close(block)
	settled(t, l)
	assert.Check(t, is.DeepEqual(fx.count("api"), map[string]int{"h1": 3, "h2": 1}), "one move of the two planned")
	assert.Check(t, is.Len(fx.history(t, "api.4"), 1), "the move started was followed to its end and recorded")
}

func TestAutoRebalanceStartsNoBatchBesideOne(t *testing.T) {
	ctx := context.Background()
	fx, l, block := startBlocked(t, "1ms")
	time.Sleep(5 * time.Millisecond)
	assert.NilError(t, l.Round(ctx)) // due again, but a batch runs
	close(block)
	settled(t, l)
	assert.Check(t, is.DeepEqual(fx.count("api"), map[string]int{"h1": 2, "h2": 1, "h3": 1}), "two moves, one batch")
}
