package deploy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// Remove removes services (their containers and stored definitions) and
// single containers. Every name is looked up before anything is removed.
func (d *Deployer) Remove(ctx context.Context, names []string) ([]string, error) {
	inv, err := d.inventory(ctx)
	if err != nil {
		return nil, err
	}
	type target struct {
		name    string
		service *spec.Service
	}
	var targets []target
	for _, name := range names {
		s, err := swarmstore.LoadService(ctx, d.Fleet.Manager, name)
		switch {
		case err == nil:
			targets = append(targets, target{name: name, service: &s})
		case !errors.Is(err, swarmstore.ErrNoService):
			return nil, err
		default:
			if _, _, ok := inv.Find(name); !ok {
				if uerr := inv.Unreachable(); uerr != nil {
					return nil, fmt.Errorf("no service or container named %q on the nodes that answer (%v)", name, uerr)
				}
				return nil, fmt.Errorf("no service or container named %q in the fleet", name)
			}
			targets = append(targets, target{name: name})
		}
	}
	var removed []string
	for _, t := range targets {
		if t.service == nil {
			c, n, _ := inv.Find(t.name)
			if err := d.removeContainer(ctx, inv, n, c.Name); err != nil {
				return removed, err
			}
			removed = append(removed, c.Name)
			// One replica fewer wanted, or scale would bring it back.
			if s, err := swarmstore.LoadService(ctx, d.Fleet.Manager, c.Service); err == nil && s.Replicas > 0 {
				if err := swarmstore.AddReplicas(ctx, d.Fleet.Manager, s.Name, -1); err != nil {
					return removed, err
				}
			}
			continue
		}
		if err := inv.Unreachable(); err != nil {
			return removed, fmt.Errorf("cannot remove every replica of %s: %w", t.name, err)
		}
		for _, c := range inv.Containers(t.name) {
			if err := d.removeContainer(ctx, inv, inv.ByName(c.Node), c.Name); err != nil {
				return removed, err
			}
			removed = append(removed, c.Name)
		}
		if err := swarmstore.DeleteService(ctx, d.Fleet.Manager, t.name); err != nil {
			return removed, err
		}
		if err := swarmstore.ReleaseReplicas(ctx, d.Fleet.Manager, t.name); err != nil {
			return removed, err
		}
		removed = append(removed, t.name)
	}
	return removed, nil
}

// removeContainer removes a fleet container and forgets its history, and
// the parts of its log that nodes kept (its node's went with it).
func (d *Deployer) removeContainer(ctx context.Context, inv fleet.Inventory, n *fleet.NodeState, name string) error {
	if err := n.Agent.Remove(ctx, name); err != nil {
		return err
	}
	dropKeptLogs(ctx, inv, n.Hostname, name)
	if err := swarmstore.ReleaseReplica(ctx, d.Fleet.Manager, name); err != nil {
		return err
	}
	return d.Fleet.ForgetHistory(ctx, name)
}

// dropKeptLogs has every other node that answers drop what it kept of the
// log of a container that is gone: a new container of that name must not
// show it. A node that does not answer keeps its parts, until the name is
// removed again; an older agent has none.
func dropKeptLogs(ctx context.Context, inv fleet.Inventory, except, name string) {
	// Not worth holding up rm for a node that is slow to answer.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, n := range inv {
		if n.Hostname == except || n.Agent == nil || n.Err != nil {
			continue
		}
		wg.Go(func() { _ = n.Agent.DropLogs(ctx, name) })
	}
	wg.Wait()
}
