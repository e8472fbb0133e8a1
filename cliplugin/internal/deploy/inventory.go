// Package deploy is what create, scale, resize and rm do across the fleet:
// it reads every node's ledger, plans with the scheduler, and asks the
// nodes' agents, which hold the cores, to do the work.
package deploy

import (
	"fmt"
	"io"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/scheduler"
)

// Deployer works on one fleet.
type Deployer struct {
	Fleet    *fleet.Fleet
	Progress io.Writer
}

// schedulerNodes is the inventory as the scheduler sees it.
func schedulerNodes(inv fleet.Inventory) []scheduler.Node {
	out := make([]scheduler.Node, 0, len(inv))
	for _, n := range inv {
		sn := scheduler.Node{Name: n.Hostname}
		switch {
		case n.Err != nil:
			sn.Unusable = "agent unreachable (" + n.Err.Error() + ")"
		case n.State != "ready":
			sn.Unusable = "node is " + n.State
		case n.Availability != "active":
			sn.Unusable = "node is " + n.Availability
		}
		if n.Err == nil {
			sn.Cores = cpuset.Of(n.Ledger.Cores...)
			var held []int
			for _, h := range n.Ledger.Held {
				held = append(held, h.Core)
			}
			sn.Free = sn.Cores.Minus(cpuset.Of(held...))
			sn.MemFree = n.Ledger.MemTotal - n.Ledger.MemReserved
			sn.Containers = len(n.Ledger.Containers)
		}
		out = append(out, sn)
	}
	return out
}

func (d *Deployer) say(format string, args ...any) {
	if d.Progress != nil {
		fmt.Fprintf(d.Progress, format+"\n", args...)
	}
}
