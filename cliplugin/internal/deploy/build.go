package deploy

import (
	"context"
	"fmt"

	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/cliplugin/internal/imagebuild"
	"github.com/docker-fleet/fleet/cliplugin/internal/specfile"
)

// build builds the images a create asks for, once each, with the
// manager's engine (its progress on Progress), and returns their IDs by
// image, for bringImages to send them on from the manager.
func (d *Deployer) build(ctx context.Context, builds []specfile.Build) (map[string]string, error) {
	built := map[string]string{}
	for _, b := range builds {
		d.say("service %s: building %s on the manager", b.Service, b.Image)
		id, err := imagebuild.Build(ctx, d.Fleet.Manager, b, d.Progress)
		if err != nil {
			return nil, err
		}
		built[b.Image] = id
	}
	return built, nil
}

// managerNode is the node whose engine the CLI talks to (where it builds
// and can remove volumes itself).
func (d *Deployer) managerNode(ctx context.Context, inv fleet.Inventory) (*fleet.NodeState, error) {
	info, err := d.Fleet.Manager.Info(ctx, client.InfoOptions{})
	if err != nil {
		return nil, err
	}
	for _, n := range inv {
		if n.ID == info.Info.Swarm.NodeID {
			return n, nil
		}
	}
	return nil, fmt.Errorf("the manager's engine (swarm node %q) is not a node of the fleet", info.Info.Swarm.NodeID)
}
