// Package deploy is what create, scale, resize and rm do across the fleet:
// it reads every node's ledger, plans with the scheduler, and asks the
// nodes' agents, which hold the cores, to do the work.
package deploy

import (
	"context"
	"fmt"
	"io"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/scheduler"
)

// Deployer works on one fleet.
type Deployer struct {
	Fleet    *fleet.Fleet
	Progress io.Writer
	// Inventory reads the fleet's nodes and ledgers (nil: Fleet.Inventory,
	// through the nodes' agents); tests give fake agents (fleettest).
	Inventory func(context.Context) (fleet.Inventory, error)
}

func (d *Deployer) inventory(ctx context.Context) (fleet.Inventory, error) {
	if d.Inventory != nil {
		return d.Inventory(ctx)
	}
	return d.Fleet.Inventory(ctx)
}

// schedulerNodes is the inventory as the scheduler sees it, with the
// swarm's facts of each node for placement constraints.
func schedulerNodes(inv fleet.Inventory) []scheduler.Node {
	out := make([]scheduler.Node, 0, len(inv))
	for _, n := range inv {
		sn := scheduler.NodeOf(n.Hostname, n.State, n.Availability, n.Ledger, n.Err)
		sn.Facts = n.Facts()
		out = append(out, sn)
	}
	return out
}

func (d *Deployer) say(format string, args ...any) {
	if d.Progress != nil {
		fmt.Fprintf(d.Progress, format+"\n", args...)
	}
}
