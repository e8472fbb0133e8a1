package scheduler

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/spec"
)

// Rebalancing decides where running containers should go: toward a
// strategy's goal (Rebalance), or off nodes being drained (Evacuate). As
// with Place it only decides: each move is a live migration that the
// nodes' agents carry out, and refuse if another command took the room
// first.

// Resident is a fleet container where it runs now.
type Resident struct {
	Name    string
	Service string
	// Replica is its number in its service: the highest moves first, as
	// scale removes the highest first.
	Replica int
	Node    string
	// Cpuset are the exclusive cores it holds on its node (none: it holds
	// none); it takes as many wherever it goes.
	Cpuset cpuset.Set
	Memory int64
	// Ports are the fixed host ports it publishes (PortsHeld): they go
	// with it.
	Ports []Port
	// Constraints are its service's placement constraints.
	Constraints []string
	// Stays says why it cannot move ("" when it can): placed on its node
	// by name, on its node's own network, refused by its agent's check, …
	Stays string
	// Load is the cores it used lately, as its agent measures them.
	Load float64
}

// LoadThreshold is how many cores in use apart the busiest and the idlest
// node may be before spread moves a container for load alone: below it,
// the figures' own noise would have a second run undo the first.
const LoadThreshold = 0.5

// Move is one live migration of a plan.
type Move struct {
	Container string `json:"container"`
	Service   string `json:"service"`
	From      string `json:"from"`
	To        string `json:"to"`
	Why       string `json:"why"`
}

// LeftOut is a container a plan leaves where it is, and why.
type LeftOut struct {
	Container string `json:"container"`
	Service   string `json:"service"`
	Node      string `json:"node"`
	Why       string `json:"why"`
}

// Shortfall is where a plan stops short of its goal (a service left
// uneven, a node left running containers) and why.
type Shortfall struct {
	Of  string `json:"of"`
	Why string `json:"why"`
}

// Plan is what Rebalance or Evacuate decided. Moves are in order: each
// fits its destination once the moves before it are done, so moves that
// share a node must run in that order.
type Plan struct {
	Moves      []Move      `json:"moves"`
	LeftOut    []LeftOut   `json:"leftOut,omitempty"`
	Shortfalls []Shortfall `json:"shortfalls,omitempty"`
	// Capped says that more moves were needed than allowed: planning
	// again once these are done finds the next ones.
	Capped bool `json:"capped,omitempty"`
}

// Rebalance plans the moves that bring residents to the strategy's goal,
// at most maxMoves of them (0: no limit). Spread evens out each service
// by its count of replicas: the busiest and the idlest node it may run
// on end up at most one apart where room allows. Binpack empties nodes
// of the residents, the fewest first, a node's all or none, into the
// most loaded nodes that have room and never into one that runs
// nothing. A move never goes where its container's constraints, cores,
// memory or host ports do not fit, nor to a node that is not usable
// (drained, down); a resident that Stays is left out, with its reason.
// Planning again once the moves are done finds nothing to do.
func Rebalance(nodes []Node, residents []Resident, strategy string, maxMoves int) (Plan, error) {
	w := newWorld(nodes, residents)
	for i, r := range w.res {
		if r.Stays != "" {
			w.leftOut(i, r.Stays)
		}
	}
	switch strategy {
	case "", spec.Spread:
		w.spread(maxMoves)
	case spec.Binpack:
		w.binpack(maxMoves)
	default:
		return Plan{}, fmt.Errorf("strategy %q: use %s or %s", strategy, spec.Spread, spec.Binpack)
	}
	return w.done(), nil
}

// Evacuate plans moving every resident of the nodes from to the others,
// each to the node of fewest replicas of its service that fits (then the
// most free cores). A resident that Stays, or that no node can take, is
// left out.
func Evacuate(nodes []Node, residents []Resident, from []string) Plan {
	w := newWorld(nodes, residents)
	out := map[int]bool{}
	for _, name := range from {
		if d, ok := w.byName[name]; ok {
			out[d] = true
			// Nothing goes to a node being emptied.
			w.nodes[d].Unusable = cmp.Or(w.nodes[d].Unusable, "being emptied")
		}
	}
	var order []int
	for i, r := range w.res {
		switch {
		case w.at[i] < 0 || !out[w.at[i]]:
		case r.Stays != "":
			w.leftOut(i, r.Stays)
		default:
			order = append(order, i)
		}
	}
	w.biggestFirst(order)
	for _, i := range order {
		best := -1
		for d := range w.nodes {
			if out[d] || w.fitsAt(i, d) != "" {
				continue
			}
			if best < 0 || w.evenerHome(i, d, best) {
				best = d
			}
		}
		if best < 0 {
			w.leftOut(i, w.noRoom(i, func(d int) bool { return out[d] }))
			continue
		}
		w.move(i, best, "empties "+w.nodes[w.at[i]].Name)
	}
	return w.done()
}

// world is the fleet as a plan leaves it so far.
type world struct {
	nodes  []Node
	byName map[string]int
	res    []Resident // by service, replica, name
	cons   [][]spec.Constraint
	at     []int // each resident's node (-1: not a node given)
	moved  []bool
	// chain makes a container moved twice one move (binpack's).
	chain bool
	plan  Plan
}

func newWorld(nodes []Node, residents []Resident) *world {
	w := &world{nodes: slices.Clone(nodes), byName: map[string]int{}, plan: Plan{Moves: []Move{}}}
	for i, n := range w.nodes {
		w.byName[n.Name] = i
	}
	w.res = slices.Clone(residents)
	slices.SortFunc(w.res, func(a, b Resident) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Replica, b.Replica), cmp.Compare(a.Name, b.Name))
	})
	w.cons = make([][]spec.Constraint, len(w.res))
	w.at = make([]int, len(w.res))
	w.moved = make([]bool, len(w.res))
	for i, r := range w.res {
		at, ok := w.byName[r.Node]
		if !ok {
			at = -1
		}
		w.at[i] = at
		cons, err := spec.ParseConstraints(r.Constraints)
		if err != nil && r.Stays == "" {
			w.res[i].Stays = "its placement constraints: " + err.Error()
		}
		w.cons[i] = cons
	}
	return w
}

func (w *world) done() Plan {
	slices.SortFunc(w.plan.LeftOut, func(a, b LeftOut) int { return cmp.Compare(a.Container, b.Container) })
	slices.SortFunc(w.plan.Shortfalls, func(a, b Shortfall) int { return cmp.Compare(a.Of, b.Of) })
	return w.plan
}

func (w *world) leftOut(i int, why string) {
	r := w.res[i]
	w.plan.LeftOut = append(w.plan.LeftOut, LeftOut{Container: r.Name, Service: r.Service, Node: r.Node, Why: why})
}

func (w *world) request(i int) Request {
	r := w.res[i]
	return Request{Cores: len(r.Cpuset), Memory: r.Memory, Ports: r.Ports, Service: r.Service}
}

// movable says whether resident i may be moved by the plan.
func (w *world) movable(i int) bool { return w.res[i].Stays == "" && w.at[i] >= 0 }

// fitsAt says why resident i cannot go to node d now, or "".
func (w *world) fitsAt(i, d int) string {
	if d == w.at[i] {
		return "it runs there"
	}
	return fits(w.nodes[d], w.request(i), w.cons[i])
}

// move moves resident i to node d: its source gets back what it held,
// d gives what it needs.
func (w *world) move(i, d int, why string) {
	r := &w.res[i]
	src, dst := &w.nodes[w.at[i]], &w.nodes[d]
	release(src, *r)
	req := w.request(i)
	// The agent takes the lowest free cores; which ones only matters to a
	// second move of the same container, which gives those back.
	held := slices.Clone(dst.Free[:min(req.Cores, len(dst.Free))])
	take(dst, req)
	dst.Load += r.Load
	for _, p := range r.Ports {
		dst.Ports[p] = r.Name // take wrote "a new replica"
	}
	r.Cpuset, w.at[i] = held, d
	if w.chain && w.moved[i] {
		// Moved twice: once A to B, B emptied later, then B to C. A takes
		// nothing in between (it was emptied first), and B only has more
		// room without it: A to C in the later move's place fits too.
		k := slices.IndexFunc(w.plan.Moves, func(m Move) bool { return m.Container == r.Name })
		from := w.plan.Moves[k].From
		w.plan.Moves = slices.Delete(w.plan.Moves, k, k+1)
		if w.moved[i] = from != dst.Name; w.moved[i] {
			w.plan.Moves = append(w.plan.Moves, Move{Container: r.Name, Service: r.Service, From: from, To: dst.Name, Why: "empties " + from})
		}
		return
	}
	w.plan.Moves = append(w.plan.Moves, Move{Container: r.Name, Service: r.Service, From: src.Name, To: dst.Name, Why: why})
	w.moved[i] = true
}

// release gives node n back what r held there.
func release(n *Node, r Resident) {
	n.Load -= r.Load
	n.Free = cpuset.Of(append(slices.Clone(n.Free), r.Cpuset...)...)
	n.Exclusive = n.Exclusive.Minus(r.Cpuset)
	n.MemFree += r.Memory
	n.Containers--
	if len(r.Ports) > 0 {
		ports := make(map[Port]string, len(n.Ports))
		for p, by := range n.Ports {
			if by != r.Name {
				ports[p] = by
			}
		}
		n.Ports = ports
	}
}

// biggestFirst orders residents as a packing fits them best: most cores,
// then most memory, then by name.
func (w *world) biggestFirst(order []int) {
	slices.SortStableFunc(order, func(a, b int) int {
		ra, rb := w.res[a], w.res[b]
		return cmp.Or(-cmp.Compare(len(ra.Cpuset), len(rb.Cpuset)), -cmp.Compare(ra.Memory, rb.Memory), cmp.Compare(ra.Name, rb.Name))
	})
}

// evenerHome says whether node a is a better home than b for resident i
// when spreading: fewer replicas of its service, then more free cores,
// then more free memory, then by name.
func (w *world) evenerHome(i, a, b int) bool {
	ca, cb := w.replicasOn(w.res[i].Service, a), w.replicasOn(w.res[i].Service, b)
	na, nb := w.nodes[a], w.nodes[b]
	return cmp.Or(cmp.Compare(ca, cb), -cmp.Compare(len(na.Free), len(nb.Free)), -cmp.Compare(na.MemFree, nb.MemFree),
		cmp.Compare(na.Name, nb.Name)) < 0
}

func (w *world) replicasOn(service string, d int) int {
	n := 0
	for i, r := range w.res {
		if r.Service == service && w.at[i] == d {
			n++
		}
	}
	return n
}

// noRoom says why no node (but those skip names) can take resident i,
// as Place says it.
func (w *world) noRoom(i int, skip func(int) bool) string {
	var why []string
	var seen []Node
	for d, n := range w.nodes {
		if skip(d) || d == w.at[i] {
			continue
		}
		seen = append(seen, n)
		if reason := w.fitsAt(i, d); reason != "" {
			why = append(why, n.Name+": "+reason)
		}
	}
	if err := noMatch(seen, w.cons[i]); err != nil {
		return err.Error()
	}
	if len(why) == 0 {
		return "no other node"
	}
	return "no node can take it: " + strings.Join(why, "; ")
}

// spreadStep is a move toward spread, and how uneven its service was.
type spreadStep struct {
	i, to, gap int
	why        string
}

// spread moves replicas from the busiest node of their service to the
// idlest it may run on until none is two apart, the most uneven service
// first (what a cap on moves keeps is the most worth it).
func (w *world) spread(maxMoves int) {
	services := w.services()
	for {
		var best *spreadStep
		for _, s := range services {
			if st, ok := w.spreadStep(s); ok && (best == nil || st.gap > best.gap) {
				best = &st
			}
		}
		if best == nil {
			break
		}
		if maxMoves > 0 && len(w.plan.Moves) >= maxMoves {
			w.plan.Capped = true
			return
		}
		w.move(best.i, best.to, best.why)
	}
	w.byLoad(maxMoves)
	for _, s := range services {
		if why := w.uneven(s); why != "" {
			w.plan.Shortfalls = append(w.plan.Shortfalls, Shortfall{Of: s, Why: why})
		}
	}
}

func (w *world) services() []string {
	var out []string
	for _, r := range w.res {
		out = append(out, r.Service)
	}
	return slices.Compact(out) // w.res is sorted by service
}

// eligible are the nodes service s may run on: usable, and meeting its
// constraints.
func (w *world) eligible(s string) []int {
	first := slices.IndexFunc(w.res, func(r Resident) bool { return r.Service == s })
	var out []int
	for d, n := range w.nodes {
		if n.Unusable == "" && Excluded(n, w.cons[first]) == "" {
			out = append(out, d)
		}
	}
	return out
}

// counts are the replicas of s on each of the nodes elig, with the least
// and the most of them. Replicas elsewhere (a drained node) count on none.
func (w *world) counts(s string, elig []int) (count map[int]int, lo, hi int) {
	count = map[int]int{}
	for _, d := range elig {
		count[d] = 0
	}
	for i, r := range w.res {
		if _, ok := count[w.at[i]]; ok && r.Service == s {
			count[w.at[i]]++
		}
	}
	lo, hi = -1, -1
	for _, c := range count {
		if lo < 0 || c < lo {
			lo = c
		}
		hi = max(hi, c)
	}
	return count, lo, hi
}

// spreadStep is the next move that evens out service s, if any: from its
// busiest node the replica of highest number, to the node of fewest replicas that fits, the one with the most
// free cores among equals.
func (w *world) spreadStep(s string) (spreadStep, bool) {
	elig := w.eligible(s)
	count, lo, hi := w.counts(s, elig)
	if len(elig) < 2 || hi-lo <= 1 {
		return spreadStep{}, false
	}
	srcs, dsts := slices.Clone(elig), slices.Clone(elig)
	slices.SortFunc(srcs, func(a, b int) int {
		return cmp.Or(-cmp.Compare(count[a], count[b]), cmp.Compare(w.nodes[a].Name, w.nodes[b].Name))
	})
	slices.SortFunc(dsts, func(a, b int) int {
		na, nb := w.nodes[a], w.nodes[b]
		return cmp.Or(cmp.Compare(count[a], count[b]), -cmp.Compare(len(na.Free), len(nb.Free)),
			-cmp.Compare(na.MemFree, nb.MemFree), cmp.Compare(na.Name, nb.Name))
	})
	for _, src := range srcs {
		if count[src]-lo < 2 {
			break
		}
		for _, i := range w.residentsOf(s, src) {
			for _, dst := range dsts {
				if count[dst] > count[src]-2 {
					break
				}
				if w.fitsAt(i, dst) == "" {
					why := fmt.Sprintf("evens out %s: %d on %s, %d on %s", s, count[src], w.nodes[src].Name, count[dst], w.nodes[dst].Name)
					return spreadStep{i: i, to: dst, gap: hi - lo, why: why}, true
				}
			}
		}
	}
	return spreadStep{}, false
}

// byLoad moves containers from the node that uses the most cores to those
// that use the fewest while they are more than LoadThreshold apart and a
// move brings them closer, never making a service's replicas uneven.
func (w *world) byLoad(maxMoves int) {
	for {
		var usable []int
		for d, n := range w.nodes {
			if n.Unusable == "" {
				usable = append(usable, d)
			}
		}
		if len(usable) < 2 {
			return
		}
		slices.SortFunc(usable, func(a, b int) int {
			return cmp.Or(cmp.Compare(w.nodes[a].Load, w.nodes[b].Load), cmp.Compare(w.nodes[a].Name, w.nodes[b].Name))
		})
		busy := usable[len(usable)-1]
		gap := w.nodes[busy].Load - w.nodes[usable[0]].Load
		if gap <= LoadThreshold {
			return
		}
		i, to, ok := w.loadStep(busy, usable[:len(usable)-1])
		if !ok {
			return
		}
		if maxMoves > 0 && len(w.plan.Moves) >= maxMoves {
			w.plan.Capped = true
			return
		}
		src, dst := w.nodes[busy], w.nodes[to]
		w.move(i, to, fmt.Sprintf("evens out load: %s uses %.1f cores, %s %.1f", src.Name, src.Load, dst.Name, dst.Load))
	}
}

// loadStep is the move off node busy, to one of dsts (idlest first), that
// leaves the pair the closest in load, if one brings them closer by a
// quarter of LoadThreshold at least.
func (w *world) loadStep(busy int, dsts []int) (int, int, bool) {
	bestI, bestTo, bestGap := -1, -1, 0.0
	for _, d := range dsts {
		gap := w.nodes[busy].Load - w.nodes[d].Load
		if gap <= LoadThreshold {
			continue
		}
		for i, r := range w.res {
			if w.at[i] != busy || !w.movable(i) || w.moved[i] || r.Load <= 0 || w.fitsAt(i, d) != "" || !w.keepsEven(i, d) {
				continue
			}
			after := math.Abs(gap - 2*r.Load)
			if after <= gap-LoadThreshold/4 && (bestI < 0 || after < bestGap) {
				bestI, bestTo, bestGap = i, d, after
			}
		}
		if bestI >= 0 {
			return bestI, bestTo, true
		}
	}
	return 0, 0, false
}

// keepsEven says whether moving resident i to node d leaves its service
// no more uneven than spread allows.
func (w *world) keepsEven(i, d int) bool {
	s := w.res[i].Service
	elig := w.eligible(s)
	if !slices.Contains(elig, d) {
		return false
	}
	count, _, _ := w.counts(s, elig)
	if _, ok := count[w.at[i]]; ok {
		count[w.at[i]]--
	}
	count[d]++
	lo, hi := -1, -1
	for _, c := range count {
		if lo < 0 || c < lo {
			lo = c
		}
		hi = max(hi, c)
	}
	return hi-lo <= 1
}

// residentsOf are the replicas of s on node d that the plan may move, the
// highest number first. One it moved already stays where it went: a
// second move would undo part of the first.
func (w *world) residentsOf(s string, d int) []int {
	var out []int
	for i, r := range w.res {
		if r.Service == s && w.at[i] == d && w.movable(i) && !w.moved[i] {
			out = append(out, i)
		}
	}
	slices.SortStableFunc(out, func(a, b int) int { return -cmp.Compare(w.res[a].Replica, w.res[b].Replica) })
	return out
}

// uneven says why service s is left more than one replica apart, or "".
func (w *world) uneven(s string) string {
	elig := w.eligible(s)
	count, lo, hi := w.counts(s, elig)
	if len(elig) < 2 || hi-lo <= 1 {
		return ""
	}
	busiest, idlest := -1, -1
	for _, d := range elig {
		if busiest < 0 || count[d] > count[busiest] {
			busiest = d
		}
		if idlest < 0 || count[d] < count[idlest] {
			idlest = d
		}
	}
	gap := fmt.Sprintf("%d on %s, %d on %s: ", count[busiest], w.nodes[busiest].Name, count[idlest], w.nodes[idlest].Name)
	mine := w.residentsOf(s, busiest)
	if len(mine) == 0 {
		return gap + "its replicas on " + w.nodes[busiest].Name + " cannot move"
	}
	var why []string
	for _, d := range elig {
		if count[d] <= count[busiest]-2 {
			why = append(why, w.nodes[d].Name+": "+w.fitsAt(mine[0], d))
		}
	}
	return gap + "no node with fewer has room (" + strings.Join(why, "; ") + ")"
}

// binpack empties nodes of the residents whole (of every container when
// they are all of them), the fewest first, into the most loaded nodes that
// have room; a node emptied, or running nothing, takes nothing.
func (w *world) binpack(maxMoves int) {
	w.chain = true
	// Nodes that keep a container that cannot move stay on whatever the
	// plan: the first places to fill.
	keep := map[int]bool{}
	for i := range w.res {
		if !w.movable(i) && w.at[i] >= 0 {
			keep[w.at[i]] = true
		}
	}
	count := map[int]int{}
	for i := range w.res {
		count[w.at[i]]++
	}
	for d, n := range w.nodes {
		if n.Containers > count[d] {
			keep[d] = true
		}
	}
	emptied := map[int]bool{}
	// Nodes that cannot be emptied in the fleet as the plan has it now,
	// tried again once it changes; blocked are those held by a container
	// that cannot move.
	failed, blocked := map[int]bool{}, map[int]string{}
	for {
		load := map[int]int{}
		for i := range w.res {
			if d := w.at[i]; d >= 0 && !emptied[d] && !failed[d] {
				load[d]++
			}
		}
		cands := slices.Collect(maps.Keys(load))
		slices.SortFunc(cands, func(a, b int) int {
			na, nb := w.nodes[a], w.nodes[b]
			return cmp.Or(cmp.Compare(load[a], load[b]), cmp.Compare(len(na.Cores)-len(na.Free), len(nb.Cores)-len(nb.Free)),
				cmp.Compare(na.Name, nb.Name))
		})
		progressed := false
		for _, s := range cands {
			moves, why := w.emptying(s, emptied, keep)
			if moves != nil && maxMoves > 0 && len(w.plan.Moves)+len(moves) > maxMoves {
				w.plan.Capped, moves = true, nil
			}
			if moves == nil {
				failed[s] = true
				if why != "" {
					blocked[s] = why
				}
				continue
			}
			for _, m := range moves {
				w.move(m[0], m[1], "empties "+w.nodes[s].Name)
			}
			emptied[s], progressed = true, true
			clear(failed)
			clear(blocked)
			break
		}
		if !progressed {
			break
		}
	}
	// A node too full to empty is what packing leaves; one held by a
	// container that cannot move is worth saying.
	for d, why := range blocked {
		w.plan.Shortfalls = append(w.plan.Shortfalls, Shortfall{Of: w.nodes[d].Name, Why: why})
	}
}

// emptying plans moving every resident off node s into the other
// nodes that run containers, each to the fullest that fits (one that
// keeps a container first), as [resident, node] pairs; nil when one cannot go, with why when that is a
// container that cannot move.
func (w *world) emptying(s int, emptied, keep map[int]bool) (moves [][2]int, blocked string) {
	var mine []int
	for i := range w.res {
		if w.at[i] == s {
			mine = append(mine, i)
		}
	}
	for _, i := range mine {
		if !w.movable(i) {
			return nil, w.res[i].Name + " cannot move: " + w.res[i].Stays
		}
	}
	w.biggestFirst(mine)
	sim := slices.Clone(w.nodes)
	pack := Request{Strategy: spec.Binpack}
	for _, i := range mine {
		best := -1
		for d := range sim {
			if d == s || emptied[d] || sim[d].Containers == 0 || fits(sim[d], w.request(i), w.cons[i]) != "" {
				continue
			}
			if best < 0 || keep[d] && !keep[best] || keep[d] == keep[best] && better(sim[d], sim[best], pack) {
				best = d
			}
		}
		if best < 0 {
			return nil, ""
		}
		take(&sim[best], w.request(i))
		moves = append(moves, [2]int{i, best})
	}
	return moves, ""
}
