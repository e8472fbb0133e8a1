// Package scheduler places replicas on nodes by their free exclusive cores,
// memory and fixed host ports. It only decides: the nodes' agents take them,
// and refuse if another command took them first.
package scheduler

import (
	"fmt"
	"maps"
	"sort"
	"strings"

	units "github.com/docker/go-units"

	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/spec"
)

// Node is what the scheduler knows of a node.
type Node struct {
	Name       string
	Cores      cpuset.Set
	Free       cpuset.Set
	MemFree    int64
	Containers int
	// Ports are the node's taken host ports and what holds each.
	Ports map[Port]string
	// Unusable says why no replica may go there (agent unreachable, …).
	Unusable string
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
}

// Place picks a node for each of n replicas, or says why one cannot be
// placed. nodes is updated as if the replicas were created.
func Place(nodes []Node, req Request, n int) ([]string, error) {
	out := make([]string, 0, n)
	for range n {
		i, err := pick(nodes, req)
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

func pick(nodes []Node, req Request) (int, error) {
	best := -1
	var why []string
	for i, n := range nodes {
		if reason := fits(n, req); reason != "" {
			why = append(why, n.Name+": "+reason)
			continue
		}
		if best < 0 || better(n, nodes[best], req) {
			best = i
		}
	}
	if best < 0 {
		return -1, fmt.Errorf("no node can take it: %s", strings.Join(why, "; "))
	}
	return best, nil
}

// fits says why a replica cannot go to n, or "" if it can.
func fits(n Node, req Request) string {
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
	case req.Cores > 0:
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
