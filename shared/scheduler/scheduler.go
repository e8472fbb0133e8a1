// Package scheduler places replicas on nodes by their free exclusive cores,
// memory and fixed host ports. It only decides: the nodes' agents take them,
// and refuse if another command took them first.
package scheduler

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	units "github.com/docker/go-units"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/spec"
)

// Node is what the scheduler knows of a node.
type Node struct {
	Name  string
	Cores cpuset.Set
	Free  cpuset.Set
	// Exclusive are the cores fleet containers hold exclusively: the
	// rest is its shared pool, of which api.MinSharedCores stay shared.
	Exclusive  cpuset.Set
	MemFree    int64
	Containers int
	// Load is the cores its fleet containers used lately, as its agent
	// measures them.
	Load float64
	// Ports are the node's taken host ports and what holds each.
	Ports map[Port]string
	// Unusable says why no replica may go there (agent unreachable, …).
	Unusable string
	// Facts are what placement constraints test (its hostname is Name
	// when not given).
	Facts spec.NodeFacts
}

// Port is a fixed host port: one per node, whoever publishes it (8080/tcp
// and 8080/udp are two).
type Port struct {
	Number   uint16
	Protocol string
}

func (p Port) String() string { return fmt.Sprintf("%d/%s", p.Number, p.Protocol) }

// Request is one replica's needs.
type Request struct {
	Cores    int
	Cpuset   cpuset.Set
	Memory   int64
	Node     string
	Strategy string
	// Ports are the replica's fixed host ports.
	Ports []Port
	// Service names the replicas in a refusal ("taken by a new replica of
	// web"): they have no names while being placed.
	Service string
	// Constraints are placement constraints (spec.ParseConstraint), every
	// one required.
	Constraints []string
}

// Place picks a node for each of n replicas, or says why one cannot be
// placed. nodes is updated as if the replicas were created.
func Place(nodes []Node, req Request, n int) ([]string, error) {
	cons, err := spec.ParseConstraints(req.Constraints)
	if err != nil {
		return nil, &spec.FieldError{Field: spec.ConstraintsField, Err: err}
	}
	out := make([]string, 0, n)
	for range n {
		i, err := pick(nodes, req, cons)
		if err != nil {
			return nil, err
		}
		take(&nodes[i], req)
		out = append(out, nodes[i].Name)
	}
	return out, nil
}

// Remove picks which of the given replicas to remove to drop n of them:
// from the busiest nodes first, the highest replica number first there.
func Remove(nodes []Node, replicas []Replica, n int) []Replica {
	busy := map[string]int{}
	for _, nd := range nodes {
		busy[nd.Name] = nd.Containers
	}
	left := append([]Replica(nil), replicas...)
	var out []Replica
	for range min(n, len(left)) {
		sort.SliceStable(left, func(a, b int) bool {
			if busy[left[a].Node] != busy[left[b].Node] {
				return busy[left[a].Node] > busy[left[b].Node]
			}
			return left[a].Index > left[b].Index
		})
		out = append(out, left[0])
		busy[left[0].Node]--
		left = left[1:]
	}
	return out
}

// Replica is a running replica, for Remove.
type Replica struct {
	Name  string
	Node  string
	Index int
}

func pick(nodes []Node, req Request, cons []spec.Constraint) (int, error) {
	best := -1
	var why []string
	for i, n := range nodes {
		if reason := fits(n, req, cons); reason != "" {
			why = append(why, n.Name+": "+reason)
			continue
		}
		if best < 0 || better(n, nodes[best], req) {
			best = i
		}
	}
	if best < 0 {
		if err := noMatch(nodes, cons); err != nil {
			return -1, err
		}
		return -1, fmt.Errorf("no node can take it: %s", strings.Join(why, "; "))
	}
	return best, nil
}

// Excluded says which placement constraint n fails and what it has
// instead ("does not match node.labels.disk==ssd (no such label)"), or ""
// when it meets them all.
func Excluded(n Node, cons []spec.Constraint) string {
	if c, has, ok := spec.Unmatched(cons, n.facts()); !ok {
		return fmt.Sprintf("does not match %s (%s)", c, has)
	}
	return ""
}

func (n Node) facts() spec.NodeFacts {
	f := n.Facts
	if f.Hostname == "" {
		f.Hostname = n.Name
	}
	return f
}

// noMatch is an error when no node meets the constraints, whatever else
// it has free: it names each constraint with the nodes it leaves out and
// what they have ("no node matches node.labels.disk==ssd (h1, h2, h3
// have no such label)"), the fix being a label or another constraint
// rather than room.
func noMatch(nodes []Node, cons []spec.Constraint) error {
	if len(cons) == 0 || len(nodes) == 0 {
		return nil
	}
	type group struct {
		has   string
		nodes []string
	}
	out := make([][]group, len(cons)) // by constraint, in the order given
	for _, n := range nodes {
		c, has, ok := spec.Unmatched(cons, n.facts())
		if ok {
			return nil
		}
		i := slices.Index(cons, c)
		j := slices.IndexFunc(out[i], func(g group) bool { return g.has == has })
		if j < 0 {
			out[i] = append(out[i], group{has: has})
			j = len(out[i]) - 1
		}
		out[i][j].nodes = append(out[i][j].nodes, n.Name)
	}
	var parts []string
	for i, c := range cons {
		var gs []string
		for _, g := range out[i] {
			verb := " has "
			if len(g.nodes) > 1 {
				verb = " have "
			}
			gs = append(gs, strings.Join(g.nodes, ", ")+verb+g.has)
		}
		part := c.String()
		if len(gs) > 0 {
			part += " (" + strings.Join(gs, "; ") + ")"
		}
		parts = append(parts, part)
	}
	if len(parts) == 1 {
		return fmt.Errorf("no node matches %s", parts[0])
	}
	return fmt.Errorf("no node matches all of %s and %s", strings.Join(parts[:len(parts)-1], ", "), parts[len(parts)-1])
}

// fits says why a replica cannot go to n, or "" if it can. A constraint
// comes first: the node is out whatever it has free.
func fits(n Node, req Request, cons []spec.Constraint) string {
	if why := Excluded(n, cons); why != "" {
		return why
	}
	switch {
	case n.Unusable != "":
		return n.Unusable
	case req.Node != "" && n.Name != req.Node:
		return "not the node asked for (" + req.Node + ")"
	case len(req.Cpuset) > 0:
		if missing := req.Cpuset.Minus(n.Cores); len(missing) > 0 {
			return fmt.Sprintf("has no core %s (cores %s)", missing, n.Cores)
		}
		if taken := req.Cpuset.Minus(n.Free); len(taken) > 0 {
			return fmt.Sprintf("core %s already held", taken)
		}
	case len(n.Free) < req.Cores:
		return fmt.Sprintf("%d of %d cores free, %d needed", len(n.Free), len(n.Cores), req.Cores)
	}
	if k, room := max(req.Cores, len(req.Cpuset)), api.ExclusiveRoom(n.Cores, n.Exclusive); k > room {
		return fmt.Sprintf("%d more of its %d cores can be held exclusively (%d stays shared), %d needed",
			room, len(n.Cores), api.MinSharedCores, k)
	}
	if req.Memory > n.MemFree {
		return fmt.Sprintf("%s of memory free, %s needed", units.BytesSize(float64(n.MemFree)), units.BytesSize(float64(req.Memory)))
	}
	var taken []string
	for _, p := range req.Ports {
		if by, ok := n.Ports[p]; ok {
			taken = append(taken, fmt.Sprintf("host port %s taken by %s", p, by))
		}
	}
	return strings.Join(taken, ", ")
}

// better says whether a is a better home than b under the strategy.
func better(a, b Node, req Request) bool {
	fa, fb := len(a.Free), len(b.Free)
	if fa != fb {
		if req.Strategy == spec.Binpack {
			return fa < fb
		}
		return fa > fb
	}
	if a.Containers != b.Containers {
		if req.Strategy == spec.Binpack {
			return a.Containers > b.Containers
		}
		return a.Containers < b.Containers
	}
	if a.MemFree != b.MemFree {
		return a.MemFree > b.MemFree
	}
	return a.Name < b.Name
}

func take(n *Node, req Request) {
	switch {
	case len(req.Cpuset) > 0:
		n.Free = n.Free.Minus(req.Cpuset)
		n.Exclusive = n.Exclusive.Union(req.Cpuset)
	case req.Cores > 0:
		n.Exclusive = n.Exclusive.Union(n.Free[:req.Cores])
		n.Free = n.Free[req.Cores:]
	}
	n.MemFree -= req.Memory
	n.Containers++
	if len(req.Ports) > 0 {
		// A copy: the caller's nodes may share the map it came with.
		ports := make(map[Port]string, len(n.Ports)+len(req.Ports))
		maps.Copy(ports, n.Ports)
		by := "a new replica"
		if req.Service != "" {
			by += " of " + req.Service
		}
		for _, p := range req.Ports {
			ports[p] = by
		}
		n.Ports = ports
	}
}
