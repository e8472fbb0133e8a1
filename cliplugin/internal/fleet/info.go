package fleet

import (
	"context"
	"sync"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// NodeInfo is a node with what its agent reports of itself.
type NodeInfo struct {
	swarmstore.Node
	Info api.Info
	// Err says why the agent could not be asked (Info is then empty).
	Err error
}

// Infos asks every node's agent for its Info, all at once.
func (f *Fleet) Infos(ctx context.Context) ([]NodeInfo, error) {
	nodes, err := swarmstore.Nodes(ctx, f.Manager)
	if err != nil {
		return nil, err
	}
	return infos(ctx, nodes, func(i int) (Agent, error) {
		c, err := f.Agent(nodes[i])
		if err != nil {
			return nil, err
		}
		return c, nil
	}), nil
}

// Infos asks the inventory's agents for their Info, all at once; a node
// whose agent did not answer for its ledger keeps that error.
func (inv Inventory) Infos(ctx context.Context) []NodeInfo {
	return infos(ctx, inv.Nodes(), func(i int) (Agent, error) {
		if inv[i].Err != nil {
			return nil, inv[i].Err
		}
		return inv[i].Agent, nil
	})
}

func infos(ctx context.Context, nodes []swarmstore.Node, agent func(int) (Agent, error)) []NodeInfo {
	out := make([]NodeInfo, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		out[i].Node = n
		wg.Go(func() {
			a, err := agent(i)
			if err == nil {
				out[i].Info, err = a.Info(ctx)
			}
			out[i].Err = err
		})
	}
	wg.Wait()
	return out
}
