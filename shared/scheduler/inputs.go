package scheduler

import (
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/spec"
)

// NodeOf is a node as the scheduler sees it: its swarm state and
// availability, and its agent's ledger, or why the agent could not be
// asked (agentErr).
func NodeOf(name, state, availability string, ledger api.Ledger, agentErr error) Node {
	sn := Node{Name: name}
	switch {
	case agentErr != nil:
		sn.Unusable = "agent unreachable (" + agentErr.Error() + ")"
	case state != "ready":
		sn.Unusable = "node is " + state
	case availability != "active":
		sn.Unusable = "node is " + availability
	}
	if agentErr == nil {
		sn.Cores = cpuset.Of(ledger.Cores...)
		var held []int
		for _, h := range ledger.Held {
			held = append(held, h.Core)
		}
		sn.Free = sn.Cores.Minus(cpuset.Of(held...))
		sn.MemFree = ledger.MemTotal - ledger.MemReserved
		sn.Containers = len(ledger.Containers)
	}
	return sn
}

// RequestOf is what one replica of s needs.
func RequestOf(s spec.Service) Request {
	set, _ := cpuset.Parse(s.Cpuset)
	return Request{Cores: s.Cores, Cpuset: set, Memory: s.Memory, Node: s.Node, Strategy: s.Strategy}
}
