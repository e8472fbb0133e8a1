// Package deploy is what create, scale, resize and rm do across the fleet:
// it reads every node's ledger, plans with the scheduler, and asks the
// nodes' agents, which hold the cores, to do the work.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/docker-fleet/fleet/cliplugin/internal/agentclient"
	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/cliplugin/internal/scheduler"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
)

// Deployer works on one fleet.
type Deployer struct {
	Fleet    *fleet.Fleet
	Progress io.Writer
}

// node is one node with its agent and what its ledger said.
type node struct {
	fleet.Node
	agent  *agentclient.Client
	ledger api.Ledger
	err    error
}

// inventory is the fleet's nodes and containers, read from every agent at once.
type inventory []*node

func (d *Deployer) inventory(ctx context.Context) (inventory, error) {
	nodes, err := fleet.Nodes(ctx, d.Fleet.Manager)
	if err != nil {
		return nil, err
	}
	inv := make(inventory, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		inv[i] = &node{Node: n}
		wg.Go(func() {
			nd := inv[i]
			if nd.agent, nd.err = d.Fleet.Agent(n); nd.err == nil {
				nd.ledger, nd.err = nd.agent.Ledger(ctx)
			}
		})
	}
	wg.Wait()
	return inv, nil
}

// schedulerNodes is the inventory as the scheduler sees it.
func (inv inventory) schedulerNodes() []scheduler.Node {
	out := make([]scheduler.Node, 0, len(inv))
	for _, n := range inv {
		sn := scheduler.Node{Name: n.Hostname}
		switch {
		case n.err != nil:
			sn.Unusable = "agent unreachable (" + n.err.Error() + ")"
		case n.State != "ready":
			sn.Unusable = "node is " + n.State
		case n.Availability != "active":
			sn.Unusable = "node is " + n.Availability
		}
		if n.err == nil {
			sn.Cores = cpuset.Of(n.ledger.Cores...)
			held := cpuset.Set{}
			for _, h := range n.ledger.Held {
				held = append(held, h.Core)
			}
			sn.Free = sn.Cores.Minus(cpuset.Of(held...))
			sn.MemFree = n.ledger.MemTotal - n.ledger.MemReserved
			sn.Containers = len(n.ledger.Containers)
		}
		out = append(out, sn)
	}
	return out
}

func (inv inventory) byName(name string) *node {
	for _, n := range inv {
		if n.Hostname == name {
			return n
		}
	}
	return nil
}

// containers lists the fleet containers, optionally of one service.
func (inv inventory) containers(service string) []api.FleetContainer {
	var out []api.FleetContainer
	for _, n := range inv {
		for _, c := range n.ledger.Containers {
			if service == "" || c.Service == service {
				out = append(out, c)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].Replica < out[j].Replica
	})
	return out
}

// find locates a container by name.
func (inv inventory) find(name string) (api.FleetContainer, *node, bool) {
	for _, n := range inv {
		for _, c := range n.ledger.Containers {
			if c.Name == name {
				return c, n, true
			}
		}
	}
	return api.FleetContainer{}, nil, false
}

// unreachable is an error naming the nodes whose agents did not answer, or
// nil: a command that must see every container refuses to guess.
func (inv inventory) unreachable() error {
	var errs []error
	for _, n := range inv {
		if n.err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", n.Hostname, n.err))
		}
	}
	return errors.Join(errs...)
}

func (d *Deployer) say(format string, args ...any) {
	if d.Progress != nil {
		fmt.Fprintf(d.Progress, format+"\n", args...)
	}
}
