package scheduler

import (
	"strings"

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
		sn.Exclusive = sn.Cores.Minus(ledger.SharedPool())
		sn.MemFree = ledger.MemTotal - ledger.MemReserved
		sn.Containers = len(ledger.Containers)
		for _, c := range ledger.Containers {
			sn.Load += c.CPU
		}
		for _, p := range ledger.Ports {
			k := portOf(p.Port, p.Protocol)
			if _, ok := sn.Ports[k]; !ok {
				if sn.Ports == nil {
					sn.Ports = map[Port]string{}
				}
				sn.Ports[k] = p.Container
			}
		}
	}
	return sn
}

// PortsHeld are the fixed host ports the ledger's node gives the
// container called name: what it needs wherever it moves.
func PortsHeld(ledger api.Ledger, name string) []Port {
	var out []Port
	for _, p := range ledger.Ports {
		if p.Container == name {
			out = append(out, portOf(p.Port, p.Protocol))
		}
	}
	return out
}

// portOf is a host port as the scheduler compares them: the engine's
// protocol names and the spec's may differ in case, and no protocol is
// tcp to both.
func portOf(n uint16, proto string) Port {
	if proto == "" {
		proto = "tcp"
	}
	return Port{Number: n, Protocol: strings.ToLower(proto)}
}

// RequestOf is what one replica of s needs.
func RequestOf(s spec.Service) Request {
	set, _ := cpuset.Parse(s.Cpuset)
	req := Request{Cores: s.Cores, Cpuset: set, Memory: s.Memory, Node: s.Node, Strategy: s.Strategy, Service: s.Name,
		Constraints: s.Constraints}
	for _, p := range s.Ports {
		// A port the engine picks (no host port) is free on every node.
		if p.Host != 0 {
			req.Ports = append(req.Ports, portOf(p.Host, p.Protocol))
		}
	}
	return req
}
