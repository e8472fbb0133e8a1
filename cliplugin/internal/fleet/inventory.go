package fleet

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// NodeState is a node with its agent and what its ledger said.
type NodeState struct {
	swarmstore.Node
	// Agent is nil when no client could be made for it (Err says why).
	Agent  Agent
	Ledger api.Ledger
	// Err says why the agent could not be asked.
	Err error
}

// Inventory is the fleet's nodes and their containers, read from every
// agent at once.
type Inventory []*NodeState

// Inventory reads every node's ledger.
func (f *Fleet) Inventory(ctx context.Context) (Inventory, error) {
	nodes, err := swarmstore.Nodes(ctx, f.Manager)
	if err != nil {
		return nil, err
	}
	return NewInventory(ctx, nodes, func(n swarmstore.Node) (Agent, error) {
		c, err := f.Agent(n)
		if err != nil {
			return nil, err // not a nil *Client in a non-nil Agent
		}
		return c, nil
	}), nil
}

// NewInventory reads the ledgers of nodes, all at once, from the agents
// agent gives them: the fleet's clients, or fakes in tests.
func NewInventory(ctx context.Context, nodes []swarmstore.Node, agent func(swarmstore.Node) (Agent, error)) Inventory {
	inv := make(Inventory, len(nodes))
	for i, n := range nodes {
		inv[i] = &NodeState{Node: n}
	}
	EachNode(len(nodes), func(i int) {
		nd := inv[i]
		if nd.Agent, nd.Err = agent(nd.Node); nd.Err == nil {
			nd.Ledger, nd.Err = nd.Agent.Ledger(ctx)
		}
	})
	return inv
}

// AgentsAtOnce bounds how many nodes one command asks at once: a fleet of
// hundreds of nodes is read in waves, not over hundreds of connections.
const AgentsAtOnce = 32

// EachNode runs fn(0) … fn(n-1), AgentsAtOnce at a time, and waits.
func EachNode(n int, fn func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, AgentsAtOnce)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(i)
		})
	}
	wg.Wait()
}

// Nodes are the inventory's swarm nodes.
func (inv Inventory) Nodes() []swarmstore.Node {
	out := make([]swarmstore.Node, 0, len(inv))
	for _, n := range inv {
		out = append(out, n.Node)
	}
	return out
}

// ByName is the node with that hostname, or nil.
func (inv Inventory) ByName(name string) *NodeState {
	for _, n := range inv {
		if n.Hostname == name {
			return n
		}
	}
	return nil
}

// Containers lists the fleet containers, of one service or ("") all.
func (inv Inventory) Containers(service string) []api.FleetContainer {
	var out []api.FleetContainer
	for _, n := range inv {
		for _, c := range n.Ledger.Containers {
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

// Find locates a container by name.
func (inv Inventory) Find(name string) (api.FleetContainer, *NodeState, bool) {
	for _, n := range inv {
		for _, c := range n.Ledger.Containers {
			if c.Name == name {
				return c, n, true
			}
		}
	}
	return api.FleetContainer{}, nil, false
}

// Unreachable is an error naming the nodes whose agents did not answer, or
// nil: a command that must see every container refuses to guess.
func (inv Inventory) Unreachable() error {
	var errs []error
	for _, n := range inv {
		if n.Err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", n.Hostname, n.Err))
		}
	}
	return errors.Join(errs...)
}
