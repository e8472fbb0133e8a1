package swarmstore

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/labels"
)

// Network is the fleet's overlay network.
type Network struct {
	Name   string `json:"name"`
	ID     string `json:"id"`
	Driver string `json:"driver"`
	Subnet string `json:"subnet"`
}

// FindNetwork returns the network init created (it carries the fleet label).
func FindNetwork(ctx context.Context, c client.APIClient) (Network, error) {
	res, err := c.NetworkList(ctx, client.NetworkListOptions{
		Filters: make(client.Filters).Add("label", labels.Network),
	})
	if err != nil {
		return Network{}, err
	}
	if len(res.Items) == 0 {
		return Network{}, ErrNoFleet
	}
	return fromNetwork(res.Items[0].Network), nil
}

// EnsureNetwork creates the attachable overlay network, or checks that the
// one already there is what was asked for. subnet may be empty (the swarm
// chooses).
func EnsureNetwork(ctx context.Context, c client.APIClient, name string, subnet netip.Prefix) (n Network, created bool, err error) {
	res, err := c.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	if err == nil {
		return checkNetwork(res.Network.Network, subnet)
	}
	if !errdefs.IsNotFound(err) {
		return Network{}, false, err
	}
	opts := client.NetworkCreateOptions{
		Driver:     "overlay",
		Scope:      "swarm",
		Attachable: true,
		Labels:     map[string]string{labels.Network: "1"},
	}
	if subnet.IsValid() {
		opts.IPAM = &network.IPAM{Config: []network.IPAMConfig{{Subnet: subnet}}}
	}
	if _, err := c.NetworkCreate(ctx, name, opts); err != nil {
		return Network{}, false, fmt.Errorf("creating network %q: %w", name, err)
	}
	res, err = c.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	if err != nil {
		return Network{}, false, err
	}
	return fromNetwork(res.Network.Network), true, nil
}

// ValidateNetwork checks, before init changes anything, that an existing
// network of that name can serve as the fleet network.
func ValidateNetwork(ctx context.Context, c client.APIClient, name string, subnet netip.Prefix) error {
	res, err := c.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	_, _, err = checkNetwork(res.Network.Network, subnet)
	return err
}

func checkNetwork(n network.Network, subnet netip.Prefix) (Network, bool, error) {
	if n.Driver != "overlay" || !n.Attachable {
		return Network{}, false, fmt.Errorf("--network %s: a %s network of that name exists and is not an attachable overlay network; choose another name", n.Name, n.Driver)
	}
	got := fromNetwork(n)
	if subnet.IsValid() && got.Subnet != subnet.String() {
		return Network{}, false, fmt.Errorf("--subnet %s: network %q already exists with subnet %s", subnet, n.Name, got.Subnet)
	}
	return got, false, nil
}

func fromNetwork(n network.Network) Network {
	out := Network{Name: n.Name, ID: n.ID, Driver: n.Driver}
	if len(n.IPAM.Config) > 0 {
		out.Subnet = n.IPAM.Config[0].Subnet.String()
	}
	return out
}
