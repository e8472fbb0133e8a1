package scheduler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/spec"
)

// rep is a replica in a test fleet: "web.3 h1" with what it needs.
type rep struct {
	name, node string
	cores      int
	mem        int64
	ports      []Port
	cons       []string
	stays      string
	load       float64 // cores in use
}

// testFleet is nodes of the same size and what runs on them, as the
// agents would report it: each replica holds the lowest cores free on its
// node when placed in order.
type testFleet struct {
	nodes   []string
	cores   int
	mem     int64
	facts   map[string]spec.NodeFacts
	drained map[string]bool
	reps    []rep
}

func newTestFleet(nodes ...string) *testFleet {
	return &testFleet{nodes: nodes, cores: 8, mem: 8 << 30}
}

func (f *testFleet) add(svc string, n int, node string, each rep) *testFleet {
	for range n {
		r := each
		r.name, r.node = svc+"."+strconv.Itoa(f.count(svc)+1), node
		f.reps = append(f.reps, r)
	}
	return f
}

func (f *testFleet) count(svc string) int {
	n := 0
	for _, r := range f.reps {
		if strings.HasPrefix(r.name, svc+".") {
			n++
		}
	}
	return n
}

// state is the fleet as the scheduler gets it; it fails the test if a
// node is given more than it has (a plan that does not fit).
func (f *testFleet) state(t *testing.T) ([]Node, []Resident) {
	t.Helper()
	var nodes []Node
	idx := map[string]int{}
	for i, name := range f.nodes {
		all := make([]int, f.cores)
		for c := range all {
			all[c] = c
		}
		n := Node{Name: name, Cores: cpuset.Of(all...), Free: cpuset.Of(all...), MemFree: f.mem, Facts: f.facts[name]}
		if f.drained[name] {
			n.Unusable = "node is drain"
		}
		nodes = append(nodes, n)
		idx[name] = i
	}
	var res []Resident
	for _, r := range f.reps {
		n := &nodes[idx[r.node]]
		assert.Assert(t, len(n.Free) >= r.cores, "%s: %s has %d cores free, %d needed", r.name, r.node, len(n.Free), r.cores)
		assert.Assert(t, n.MemFree >= r.mem, "%s: %s is out of memory", r.name, r.node)
		cores := slices.Clone(n.Free[:r.cores])
		n.Free = n.Free[r.cores:]
		n.MemFree -= r.mem
		n.Containers++
		n.Load += r.load
		for _, p := range r.ports {
			_, taken := n.Ports[p]
			assert.Assert(t, !taken, "%s: host port %s of %s taken by %s", r.name, p, r.node, n.Ports[p])
			if n.Ports == nil {
				n.Ports = map[Port]string{}
			}
			n.Ports[p] = r.name
		}
		if cons, err := spec.ParseConstraints(r.cons); err == nil {
			assert.Assert(t, Excluded(*n, cons) == "", "%s on %s: %s", r.name, r.node, Excluded(*n, cons))
		}
		svc, num, _ := strings.Cut(r.name, ".")
		replica, _ := strconv.Atoi(num)
		res = append(res, Resident{Name: r.name, Service: svc, Replica: replica, Node: r.node, Cpuset: cores,
			Memory: r.mem, Ports: r.ports, Constraints: r.cons, Stays: r.stays, Load: r.load})
	}
	return nodes, res
}

// apply carries the plan out one move at a time, each checked against the
// fleet as the moves before it left it.
func (f *testFleet) apply(t *testing.T, p Plan) {
	t.Helper()
	for _, m := range p.Moves {
		i := slices.IndexFunc(f.reps, func(r rep) bool { return r.name == m.Container })
		assert.Assert(t, i >= 0, m.Container)
		assert.Assert(t, is.Equal(f.reps[i].node, m.From), "%+v", m)
		assert.Assert(t, f.reps[i].stays == "", "%s moved though it stays", m.Container)
		assert.Assert(t, !f.drained[m.To], "%s moved to drained %s", m.Container, m.To)
		// Moved last on its new node, as the agent books it.
		r := f.reps[i]
		r.node = m.To
		f.reps = append(slices.Delete(f.reps, i, i+1), r)
		f.state(t)
	}
}

// perNode counts the replicas of svc on each node, in the fleet's order.
func (f *testFleet) perNode(svc string) []int {
	out := make([]int, len(f.nodes))
	for _, r := range f.reps {
		if strings.HasPrefix(r.name, svc+".") {
			out[slices.Index(f.nodes, r.node)]++
		}
	}
	return out
}

func (f *testFleet) plan(t *testing.T, strategy string, maxMoves int) Plan {
	t.Helper()
	nodes, res := f.state(t)
	p, err := Rebalance(nodes, res, strategy, maxMoves)
	assert.NilError(t, err)
	return p
}

// settled checks that planning again, once the plan is done, finds
// nothing to do.
func (f *testFleet) settled(t *testing.T, strategy string) {
	t.Helper()
	p := f.plan(t, strategy, 0)
	assert.Check(t, is.Len(p.Moves, 0), "a second plan: %+v", p.Moves)
}

func moves(p Plan) []string {
	var out []string
	for _, m := range p.Moves {
		out = append(out, fmt.Sprintf("%s %s>%s", m.Container, m.From, m.To))
	}
	return out
}

var small = rep{cores: 1, mem: 64 << 20}

func TestSpreadSixOnOneNode(t *testing.T) {
	f := newTestFleet("h1", "h2", "h3").add("web", 6, "h1", small)
	p := f.plan(t, spec.Spread, 0)
	assert.Check(t, is.DeepEqual(moves(p), []string{"web.6 h1>h2", "web.5 h1>h3", "web.4 h1>h2", "web.3 h1>h3"}))
	assert.Check(t, is.Equal(p.Moves[0].Why, "evens out web: 6 on h1, 0 on h2"))
	assert.Check(t, !p.Capped)
	assert.Check(t, is.Len(p.LeftOut, 0))
	assert.Check(t, is.Len(p.Shortfalls, 0))
	f.apply(t, p)
	assert.Check(t, is.DeepEqual(f.perNode("web"), []int{2, 2, 2}))
	f.settled(t, spec.Spread)
}

func TestSpreadPrefersMostFreeCores(t *testing.T) {
	// h2 and h3 run no web; h3 has more cores free.
	f := newTestFleet("h1", "h2", "h3").add("web", 3, "h1", small).add("db", 1, "h2", rep{cores: 4})
	p := f.plan(t, spec.Spread, 0)
	assert.Check(t, is.DeepEqual(moves(p), []string{"web.3 h1>h3", "web.2 h1>h2"}))
	f.apply(t, p)
	f.settled(t, spec.Spread)
}

func TestSpreadNothingToDoWhenEven(t *testing.T) {
	f := newTestFleet("h1", "h2", "h3").add("web", 2, "h1", small).add("web", 1, "h2", small).add("web", 2, "h3", small).
		add("db", 1, "h2", small)
	p := f.plan(t, spec.Spread, 0)
	assert.Check(t, is.Len(p.Moves, 0))
	assert.Check(t, is.Len(p.Shortfalls, 0))
}

func TestSpreadLeavesPinnedReplicas(t *testing.T) {
	pinned := small
	pinned.stays = "placed with --node h1"
	pinned.cons = []string{"node.hostname==h1"}
	f := newTestFleet("h1", "h2", "h3").add("db", 4, "h1", pinned).add("web", 3, "h1", small)
	p := f.plan(t, spec.Spread, 0)
	assert.Check(t, is.DeepEqual(moves(p), []string{"web.3 h1>h2", "web.2 h1>h3"}))
	assert.Check(t, is.Len(p.LeftOut, 4))
	assert.Check(t, is.DeepEqual(p.LeftOut[0], LeftOut{Container: "db.1", Service: "db", Node: "h1", Why: "placed with --node h1"}))
	assert.Check(t, is.Len(p.Shortfalls, 0), "a pinned service has one node: it is even")
	f.apply(t, p)
	f.settled(t, spec.Spread)
}

func TestSpreadSomeReplicasCannotMove(t *testing.T) {
	// Four of web's five on h1 cannot migrate: the fifth still goes.
	f := newTestFleet("h1", "h2")
	f.add("web", 4, "h1", rep{stays: "io_uring in use"}).add("web", 1, "h1", small)
	p := f.plan(t, spec.Spread, 0)
	assert.Check(t, is.DeepEqual(moves(p), []string{"web.5 h1>h2"}))
	want := []Shortfall{{Of: "web", Why: "4 on h1, 1 on h2: its replicas on h1 cannot move"}}
	assert.Check(t, is.DeepEqual(p.Shortfalls, want))
	assert.Check(t, is.Len(p.LeftOut, 4))
	f.apply(t, p)
	p = f.plan(t, spec.Spread, 0)
	assert.Check(t, is.Len(p.Moves, 0))
	assert.Check(t, is.DeepEqual(p.Shortfalls, want))
}

func TestSpreadRespectsConstraints(t *testing.T) {
	f := newTestFleet("h1", "h2", "h3")
	f.facts = map[string]spec.NodeFacts{
		"h1": {Labels: map[string]string{"disk": "ssd"}},
		"h2": {Labels: map[string]string{"disk": "ssd"}},
	}
	f.add("web", 6, "h1", rep{cores: 1, cons: []string{"node.labels.disk==ssd"}})
	p := f.plan(t, spec.Spread, 0)
	assert.Check(t, is.DeepEqual(moves(p), []string{"web.6 h1>h2", "web.5 h1>h2", "web.4 h1>h2"}), "h3 has no ssd")
	f.apply(t, p)
	assert.Check(t, is.DeepEqual(f.perNode("web"), []int{3, 3, 0}))
	f.settled(t, spec.Spread)
}

func TestSpreadSkipsDrainedNodes(t *testing.T) {
	f := newTestFleet("h1", "h2", "h3").add("web", 6, "h1", small)
	f.drained = map[string]bool{"h3": true}
	p := f.plan(t, spec.Spread, 0)
	f.apply(t, p)
	assert.Check(t, is.DeepEqual(f.perNode("web"), []int{3, 3, 0}))
	f.settled(t, spec.Spread)
}

func TestSpreadRespectsRoom(t *testing.T) {
	// h2 has one core: web (a core each) gets one replica there, the rest
	// to h3 although it is then the busier of the two.
	f := newTestFleet("h1", "h2", "h3").add("web", 6, "h1", small).add("big", 1, "h2", rep{cores: 7})
	p := f.plan(t, spec.Spread, 0)
	f.apply(t, p)
	assert.Check(t, is.DeepEqual(f.perNode("web"), []int{3, 1, 2}))
	f.settled(t, spec.Spread)
	p = f.plan(t, spec.Spread, 0)
	assert.Check(t, is.DeepEqual(p.Shortfalls, []Shortfall{{Of: "web", Why: "3 on h1, 1 on h2: no node with fewer has room (h2: 0 of 8 cores free, 1 needed)"}}))

	// Memory too.
	f = newTestFleet("h1", "h2").add("web", 4, "h1", rep{mem: 1 << 30}).add("cache", 1, "h2", rep{mem: 7 << 30})
	p = f.plan(t, spec.Spread, 0)
	assert.Check(t, is.DeepEqual(moves(p), []string{"web.4 h1>h2"}))
}

func TestSpreadRespectsHostPorts(t *testing.T) {
	// web is 2/1/0; web.2 publishes 8080, which lb.1 holds on h3: web.1,
	// which publishes none, goes instead.
	p8080 := []Port{{8080, "tcp"}}
	f := newTestFleet("h1", "h2", "h3").add("lb", 1, "h3", rep{ports: p8080}).
		add("web", 1, "h1", small).add("web", 1, "h1", rep{cores: 1, ports: p8080}).add("web", 1, "h2", small)
	p := f.plan(t, spec.Spread, 0)
	assert.Check(t, is.DeepEqual(moves(p), []string{"web.1 h1>h3"}))
	f.apply(t, p)
	f.settled(t, spec.Spread)

	// Only web.2 could go: it cannot, and the plan says why.
	f = newTestFleet("h1", "h2", "h3").add("lb", 1, "h3", rep{ports: p8080}).
		add("web", 1, "h1", rep{stays: "placed before"}).add("web", 1, "h1", rep{cores: 1, ports: p8080}).add("web", 1, "h2", small)
	p = f.plan(t, spec.Spread, 0)
	assert.Check(t, is.Len(p.Moves, 0))
	assert.Check(t, is.DeepEqual(p.Shortfalls, []Shortfall{{Of: "web", Why: "2 on h1, 0 on h3: no node with fewer has room (h3: host port 8080/tcp taken by lb.1)"}}))
}

func TestSpreadMaxMovesTakesTheMostUnevenFirst(t *testing.T) {
	f := newTestFleet("h1", "h2", "h3").add("api", 3, "h1", small).add("web", 6, "h1", small)
	f.cores = 16
	p := f.plan(t, spec.Spread, 2)
	assert.Check(t, p.Capped)
	assert.Check(t, is.DeepEqual(moves(p), []string{"web.6 h1>h2", "web.5 h1>h3"}))
	f.apply(t, p)
	p = f.plan(t, spec.Spread, 0)
	assert.Check(t, !p.Capped)
	assert.Check(t, is.Len(p.Moves, 4), "%v", moves(p))
	f.apply(t, p)
	assert.Check(t, is.DeepEqual(f.perNode("web"), []int{2, 2, 2}))
	assert.Check(t, is.DeepEqual(f.perNode("api"), []int{1, 1, 1}))
	f.settled(t, spec.Spread)

	// A cap the plan does not reach is no cap.
	f = newTestFleet("h1", "h2").add("web", 2, "h1", small)
	p = f.plan(t, spec.Spread, 5)
	assert.Check(t, is.Len(p.Moves, 1))
	assert.Check(t, !p.Capped)
}

func TestBinpackEmptiesNodes(t *testing.T) {
	f := newTestFleet("h1", "h2", "h3").add("web", 4, "h1", small).add("web", 2, "h2", small).add("db", 1, "h3", rep{cores: 2})
	p := f.plan(t, spec.Binpack, 0)
	// h3 (one container) first, into h1 (fewest cores free); then h2.
	assert.Check(t, is.DeepEqual(moves(p), []string{"db.1 h3>h1", "web.5 h2>h1", "web.6 h2>h1"}))
	assert.Check(t, is.Equal(p.Moves[0].Why, "empties h3"))
	f.apply(t, p)
	assert.Check(t, is.DeepEqual(f.perNode("web"), []int{6, 0, 0}))
	f.settled(t, spec.Binpack)
}

func TestBinpackWholeNodesOnly(t *testing.T) {
	// h2's three replicas need 3 cores and h1 has 2 free: h2 is not half
	// emptied, and h3 (empty) takes nothing.
	f := newTestFleet("h1", "h2", "h3").add("web", 6, "h1", small).add("web", 3, "h2", small)
	p := f.plan(t, spec.Binpack, 0)
	assert.Check(t, is.Len(p.Moves, 0), "%v", moves(p))
	assert.Check(t, is.Len(p.Shortfalls, 0), "room is what packing leaves: %+v", p.Shortfalls)
}

func TestBinpackBlockedByAContainerThatStays(t *testing.T) {
	f := newTestFleet("h1", "h2", "h3").add("web", 3, "h1", small).add("web", 1, "h2", small).
		add("db", 1, "h2", rep{stays: "placed with --node h2", cons: []string{"node.hostname==h2"}}).add("web", 1, "h3", small)
	p := f.plan(t, spec.Binpack, 0)
	// h2 keeps db.1 whatever the plan: it is filled first.
	assert.Check(t, is.DeepEqual(moves(p), []string{"web.5 h3>h2", "web.1 h1>h2", "web.2 h1>h2", "web.3 h1>h2"}))
	assert.Check(t, is.DeepEqual(p.Shortfalls, []Shortfall{{Of: "h2", Why: "db.1 cannot move: placed with --node h2"}}))
	f.apply(t, p)
	f.settled(t, spec.Binpack)
}

func TestBinpackRespectsPortsAndConstraints(t *testing.T) {
	p80 := []Port{{80, "tcp"}}
	f := newTestFleet("h1", "h2", "h3").add("app", 3, "h1", small).add("lb", 1, "h1", rep{ports: p80}).
		add("app", 2, "h2", small).add("lb", 1, "h3", rep{ports: p80})
	p := f.plan(t, spec.Binpack, 0)
	// lb.2 cannot join lb.1 on h1: it goes to h2, which then cannot be
	// emptied into h1 (port 80 again).
	assert.Check(t, is.DeepEqual(moves(p), []string{"lb.2 h3>h2"}))
	f.apply(t, p)
	f.settled(t, spec.Binpack)

	f = newTestFleet("h1", "h2", "h3")
	f.facts = map[string]spec.NodeFacts{"h2": {Role: "worker"}, "h3": {Role: "worker"}, "h1": {Role: "manager"}}
	f.add("app", 3, "h1", small).add("job", 2, "h3", rep{cons: []string{"node.role==worker"}}).add("app", 1, "h2", small)
	p = f.plan(t, spec.Binpack, 0)
	// h2 (one app) into h1; h3's jobs cannot go to the manager, and h2 is
	// empty now: h1 empties into h3 instead, app.4 going there at once.
	assert.Check(t, is.DeepEqual(moves(p), []string{"app.1 h1>h3", "app.2 h1>h3", "app.3 h1>h3", "app.4 h2>h3"}))
	assert.Check(t, is.Equal(p.Moves[3].Why, "empties h2"))
	f.apply(t, p)
	f.settled(t, spec.Binpack)
}

func TestBinpackMaxMovesWholeNodes(t *testing.T) {
	f := newTestFleet("h1", "h2", "h3").add("web", 4, "h1", small).add("web", 3, "h2", small).add("web", 1, "h3", small)
	p := f.plan(t, spec.Binpack, 2)
	assert.Check(t, is.DeepEqual(moves(p), []string{"web.8 h3>h1"}), "h2 takes 3 moves: not begun")
	assert.Check(t, p.Capped)
}

func TestRebalanceUnknownStrategy(t *testing.T) {
	_, err := Rebalance(nil, nil, "random", 0)
	assert.Check(t, is.Error(err, `strategy "random": use spread or binpack`))
}

func TestRebalanceLeavesTheCallersNodesAlone(t *testing.T) {
	p8080 := []Port{{8080, "tcp"}}
	f := newTestFleet("h1", "h2").add("web", 2, "h1", rep{cores: 1}).add("web", 1, "h1", rep{cores: 1, ports: p8080})
	nodes, res := f.state(t)
	free, ports := slices.Clone(nodes[0].Free), len(nodes[0].Ports)
	_, err := Rebalance(nodes, res, spec.Spread, 0)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(nodes[0].Free, free))
	assert.Check(t, is.Len(nodes[0].Ports, ports))
	assert.Check(t, is.Len(nodes[1].Ports, 0))
}

func TestEvacuate(t *testing.T) {
	p8080 := []Port{{8080, "tcp"}}
	f := newTestFleet("h1", "h2", "h3", "h4").add("web", 1, "h1", small).add("web", 1, "h2", small).
		add("lb", 1, "h2", rep{cores: 1, mem: 64 << 20, ports: p8080}).
		add("web", 2, "h4", small).add("lb", 1, "h4", rep{cores: 1, mem: 64 << 20, ports: p8080}).
		add("db", 1, "h4", rep{stays: "placed with --node h4"}).
		add("big", 1, "h4", rep{cores: 7})
	f.cores = 10
	f.drained = map[string]bool{"h4": true}
	nodes, res := f.state(t)
	p := Evacuate(nodes, res, []string{"h4"})
	// big first (most cores), then lb.2 (8080 taken on h2), then web to
	// the nodes with fewest web: h3, then h1 or h2 (h2 has fewer free).
	assert.Check(t, is.DeepEqual(moves(p), []string{"big.1 h4>h3", "lb.2 h4>h1", "web.3 h4>h3", "web.4 h4>h1"}))
	assert.Check(t, is.Equal(p.Moves[0].Why, "empties h4"))
	assert.Check(t, is.DeepEqual(p.LeftOut, []LeftOut{{Container: "db.1", Service: "db", Node: "h4", Why: "placed with --node h4"}}))
	f.apply(t, p)

	// Nowhere to go: said with each node's reason, the drained one left out.
	f = newTestFleet("h1", "h2").add("big", 1, "h2", rep{cores: 6}).add("big", 1, "h1", rep{cores: 6})
	nodes, res = f.state(t)
	p = Evacuate(nodes, res, []string{"h2"})
	assert.Check(t, is.Len(p.Moves, 0))
	assert.Check(t, is.DeepEqual(p.LeftOut, []LeftOut{{Container: "big.1", Service: "big", Node: "h2",
		Why: "no node can take it: h1: 2 of 8 cores free, 6 needed"}}))

	f = newTestFleet("h1", "h2").add("web", 1, "h2", rep{cons: []string{"node.labels.disk==ssd"}})
	f.facts = map[string]spec.NodeFacts{"h2": {Labels: map[string]string{"disk": "ssd"}}}
	nodes, res = f.state(t)
	p = Evacuate(nodes, res, []string{"h2"})
	assert.Check(t, is.DeepEqual(p.LeftOut[0].Why, "no node matches node.labels.disk==ssd (h1 has no such label)"))
}

// Random fleets: every plan fits move by move, never moves what stays or
// goes outside constraints, and a second plan finds nothing to do.
func TestRebalanceRandomFleetsSettle(t *testing.T) {
	for seed := range 1000 {
		rnd := rand.New(rand.NewPCG(uint64(seed), 7))
		nodes := []string{"h1", "h2", "h3", "h4", "h5"}[:2+rnd.IntN(4)]
		f := newTestFleet(nodes...)
		f.cores, f.mem = 4+rnd.IntN(8), int64(1+rnd.IntN(4))<<30
		f.facts = map[string]spec.NodeFacts{}
		for _, n := range nodes {
			f.facts[n] = spec.NodeFacts{Labels: map[string]string{"zone": []string{"a", "b"}[rnd.IntN(2)]}}
		}
		if rnd.IntN(3) == 0 {
			f.drained = map[string]bool{nodes[rnd.IntN(len(nodes))]: true}
		}
		used := map[string]int{}
		mem := map[string]int64{}
		for s := range 1 + rnd.IntN(4) {
			svc := string(rune('a' + s))
			each := rep{cores: rnd.IntN(3), mem: int64(rnd.IntN(4)) << 28}
			if rnd.IntN(4) == 0 {
				each.cons = []string{"node.labels.zone==a"}
			}
			if rnd.IntN(5) == 0 {
				each.ports = []Port{{uint16(8000 + s), "tcp"}}
			}
			for range 1 + rnd.IntN(8) {
				n := nodes[rnd.IntN(len(nodes))]
				if used[n]+each.cores > f.cores || mem[n]+each.mem > f.mem || f.facts[n].Labels["zone"] != "a" && each.cons != nil {
					continue
				}
				if each.ports != nil && slices.ContainsFunc(f.reps, func(r rep) bool {
					return r.node == n && slices.Equal(r.ports, each.ports)
				}) {
					continue
				}
				r := each
				if rnd.IntN(6) == 0 {
					r.stays = "cannot"
				}
				used[n] += r.cores
				mem[n] += r.mem
				f.add(svc, 1, n, r)
			}
		}
		for _, strategy := range []string{spec.Spread, spec.Binpack} {
			g := *f
			g.reps = slices.Clone(f.reps)
			p := g.plan(t, strategy, 0)
			g.apply(t, p)
			again := g.plan(t, strategy, 0)
			assert.Check(t, is.Len(again.Moves, 0), "seed %d, %s: %v then %v", seed, strategy, moves(p), moves(again))
			names := map[string]bool{}
			for _, m := range p.Moves {
				assert.Check(t, !names[m.Container], "seed %d: %s moves twice: %v", seed, m.Container, moves(p))
				names[m.Container] = true
			}
		}
	}
}

func TestSpreadByLoadSeparatesBusyContainers(t *testing.T) {
	// Two services of one replica each are even by count anywhere; both
	// burn a core on h1 while h2 and h3 idle.
	burn := small
	burn.load = 0.95
	idle := small
	idle.load = 0.01
	f := newTestFleet("h1", "h2", "h3").add("burna", 1, "h1", burn).add("burnb", 1, "h1", burn).
		add("idle", 1, "h2", idle).add("idle", 1, "h3", idle)
	p := f.plan(t, spec.Spread, 0)
	assert.Assert(t, is.Len(p.Moves, 1), "%+v", p.Moves)
	m := p.Moves[0]
	assert.Check(t, strings.HasPrefix(m.Container, "burn"), "%+v", m)
	assert.Check(t, is.Equal(m.From, "h1"))
	assert.Check(t, m.To != "h1")
	assert.Check(t, is.Contains(m.Why, "evens out load: h1 uses 1.9 cores"), m.Why)
	f.apply(t, p)
	f.settled(t, spec.Spread)
}

func TestSpreadByLoadThreshold(t *testing.T) {
	warm := small
	warm.load = 0.4
	f := newTestFleet("h1", "h2").add("a", 1, "h1", warm)
	assert.Check(t, is.Len(f.plan(t, spec.Spread, 0).Moves, 0), "0.4 cores apart: below the threshold")
}

func TestSpreadByLoadKeepsServicesEven(t *testing.T) {
	// web is 1/1/0, and burns on h1. h2 is the idlest, but web.1 there
	// would make web 0/2/0: it goes to h3 (0/1/1), which db warms a bit.
	burn := small
	burn.load = 0.8
	stuck := burn
	stuck.stays = "placed with --node h1"
	warm := small
	warm.load = 0.3
	warm.stays = "placed with --node h3"
	f := newTestFleet("h1", "h2", "h3").add("web", 1, "h1", burn).add("web", 1, "h2", small).
		add("db", 1, "h3", warm).add("batch", 1, "h1", stuck)
	p := f.plan(t, spec.Spread, 0)
	assert.Assert(t, is.Len(p.Moves, 1), "%+v", p.Moves)
	assert.Check(t, is.Equal(p.Moves[0].To, "h3"), "%+v", p.Moves)
	f.apply(t, p)
	f.settled(t, spec.Spread)
}
