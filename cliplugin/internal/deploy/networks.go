package deploy

import (
	"context"
	"fmt"
	"slices"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// attach readies what a create's replicas join and mount besides the fleet
// network, once they are placed and before anything else is made: the
// Compose file's networks, made (or found) through the manager's engine,
// and each replica's request given the contents of its service's secrets
// and configs.
func (d *Deployer) attach(ctx context.Context, work []job, opts CreateOptions) error {
	for i := range work {
		files, err := filesOf(work[i].req.Service, opts.Files)
		if err != nil {
			return err
		}
		work[i].req.Files = files
		work[i].req.Copies = opts.Copies[work[i].req.Service.Name]
	}
	return d.ensureNetworks(ctx, opts.Networks)
}

// filesOf picks the contents of s's secrets and configs.
func filesOf(s spec.Service, contents []api.FileContent) ([]api.FileContent, error) {
	var out []api.FileContent
	for _, f := range s.Files() {
		i := slices.IndexFunc(contents, func(c api.FileContent) bool { return c.Kind == f.Kind && c.Name == f.Name })
		if i < 0 {
			return nil, fmt.Errorf("service %s: no content for its %s %s", s.Name, f.Kind, f.Name)
		}
		if !slices.ContainsFunc(out, func(c api.FileContent) bool { return c.Kind == f.Kind && c.Name == f.Name }) {
			out = append(out, contents[i])
		}
	}
	return out, nil
}

// ensureNetworks makes each network as an attachable overlay network of
// the swarm, unless it is there already and fleet containers may join it
// (with the subnets asked for); an external one must be there.
func (d *Deployer) ensureNetworks(ctx context.Context, nets []spec.Network) error {
	if len(nets) == 0 {
		return nil
	}
	fleetNet, err := swarmstore.FindNetwork(ctx, d.Fleet.Manager)
	if err != nil {
		return err
	}
	for _, n := range nets {
		if err := d.ensureNetwork(ctx, n, fleetNet.Name); err != nil {
			return fmt.Errorf("networks.%s: %w", n.Key, err)
		}
	}
	return nil
}

func (d *Deployer) ensureNetwork(ctx context.Context, n spec.Network, fleetNet string) error {
	if n.Name == fleetNet {
		return fmt.Errorf("%s is the fleet network, which every replica joins first (as Compose's default network): leave it out", n.Name)
	}
	res, err := d.Fleet.Manager.NetworkInspect(ctx, n.Name, client.NetworkInspectOptions{})
	switch {
	case err == nil:
		return usable(n, res.Network.Network)
	case !errdefs.IsNotFound(err):
		return err
	case n.External:
		return fmt.Errorf("external network %s does not exist: create it with docker network create --driver overlay --attachable %s", n.Name, n.Name)
	}
	opts := client.NetworkCreateOptions{Driver: "overlay", Scope: "swarm", Attachable: true,
		Internal: n.Internal, Labels: n.Labels, Options: n.DriverOpts}
	if len(n.IPAM) > 0 {
		opts.IPAM = &network.IPAM{}
		for _, p := range n.IPAM {
			opts.IPAM.Config = append(opts.IPAM.Config, network.IPAMConfig{Subnet: p.Subnet, IPRange: p.IPRange, Gateway: p.Gateway})
		}
	}
	if _, err := d.Fleet.Manager.NetworkCreate(ctx, n.Name, opts); err != nil {
		return fmt.Errorf("creating network %s: %w", n.Name, err)
	}
	d.say("network %s created", n.Name)
	return nil
}

// usable refuses a network found under the name that fleet containers
// could not join, or that lacks a subnet the file asks for.
func usable(n spec.Network, have network.Network) error {
	if have.Driver != "overlay" || have.Scope != "swarm" || !have.Attachable {
		return fmt.Errorf("network %s exists, and is no attachable overlay network of the swarm (driver %s, scope %s, attachable %t): fleet containers cannot join it",
			n.Name, have.Driver, have.Scope, have.Attachable)
	}
	for _, p := range n.IPAM {
		if !slices.ContainsFunc(have.IPAM.Config, func(c network.IPAMConfig) bool { return c.Subnet == p.Subnet }) {
			return fmt.Errorf("network %s exists without subnet %s: remove it (docker network rm %s) or drop the subnet", n.Name, p.Subnet, n.Name)
		}
	}
	return nil
}
