package deploy

import (
	"context"
	"errors"
	"fmt"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// Resize changes the cpuset and memory of a container, or of every replica
// of a service (and its stored definition, so that new replicas match), in
// place. If one replica is refused, those already changed are changed back.
func (d *Deployer) Resize(ctx context.Context, target string, req api.ResizeRequest) ([]api.FleetContainer, error) {
	inv, err := d.inventory(ctx)
	if err != nil {
		return nil, err
	}
	var targets []api.FleetContainer
	svc, err := swarmstore.LoadService(ctx, d.Fleet.Manager, target)
	isService := err == nil
	switch {
	case isService:
		if err := refuseWhileUpdating(ctx, d, target, "resize"); err != nil {
			return nil, err
		}
		if err := inv.Unreachable(); err != nil {
			return nil, fmt.Errorf("cannot reach every replica of %s: %w", target, err)
		}
		targets = inv.Containers(target)
	case !errors.Is(err, swarmstore.ErrNoService):
		return nil, err
	default:
		c, _, ok := inv.Find(target)
		if !ok {
			return nil, fmt.Errorf("no service or container named %q in the fleet", target)
		}
		targets = []api.FleetContainer{c}
	}

	var done []api.FleetContainer
	for _, c := range targets {
		out, err := inv.ByName(c.Node).Agent.Resize(ctx, c.Name, req)
		if err != nil {
			d.restore(ctx, inv, targets[:len(done)])
			return nil, fmt.Errorf("%s on %s: %w", c.Name, c.Node, err)
		}
		done = append(done, out)
	}
	if isService {
		before := svc
		if req.Cores != nil {
			svc.Cores, svc.Cpuset = *req.Cores, ""
		}
		if req.Cpuset != nil {
			svc.Cores, svc.Cpuset = 0, *req.Cpuset
		}
		if req.Memory != nil {
			svc.Memory = *req.Memory
		}
		if req.MemorySwap != nil {
			svc.MemorySwap = *req.MemorySwap
		}
		if err := swarmstore.ReplaceService(ctx, d.Fleet.Manager, svc, before); err != nil {
			return done, err
		}
	}
	return done, nil
}

// restore puts containers back to the limits they had.
func (d *Deployer) restore(ctx context.Context, inv fleet.Inventory, before []api.FleetContainer) {
	ctx = context.WithoutCancel(ctx)
	for _, c := range before {
		cpus, mem, swap := c.Cpuset, c.Memory, c.MemorySwap
		var req api.ResizeRequest
		if mem > 0 {
			req.Memory, req.MemorySwap = &mem, &swap
		}
		if c.Exclusive {
			req.Cpuset = &cpus
		}
		_, _ = inv.ByName(c.Node).Agent.Resize(ctx, c.Name, req)
	}
}
