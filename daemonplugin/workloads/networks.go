package workloads

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
)

// A fleet container's extra networks (Compose's networks:) are attachable
// overlay networks of the swarm that it joins besides the fleet network.
// The fleet network stays its primary one: its address in the fleet, the
// network the anchor keeps, the endpoint a migration's holder is made
// with. An engine of API 1.41 takes one network at create, so the others
// are connected between the create and the start, when the engine only
// records them; the swarm attaches them at the start.

// hostNetworks are every engine's own networks, never a fleet container's.
var hostNetworks = []string{"host", "bridge", "none"}

// JoinableNetwork refuses (as permission denied) a network that a fleet
// container on the fleet network fleetNet may not join as an extra one:
// only an attachable overlay network of the swarm, never a network of
// this node's own.
func (m *Manager) JoinableNetwork(ctx context.Context, name, fleetNet string) error {
	var n *network.Network
	res, err := m.Engine.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	switch {
	case err == nil:
		n = &res.Network.Network
	case !errdefs.IsNotFound(err):
		return fmt.Errorf("network %s: %w", name, err)
	}
	if err := joinable(name, fleetNet, n); err != nil {
		return Refuse(errdefs.ErrPermissionDenied, "%v", err)
	}
	return nil
}

// joinable is JoinableNetwork's rule; n is the network as this node's
// engine knows it, nil when it knows none of that name. A node knows every
// network of its own; a swarm network only once one of its containers uses
// it, and then the swarm attaches a container only to an attachable one.
func joinable(name, fleetNet string, n *network.Network) error {
	switch {
	case name == fleetNet:
		return fmt.Errorf("network %s is the fleet network, which every fleet container joins first", name)
	case slices.Contains(hostNetworks, name):
		return fmt.Errorf("network %s is each host's own", name)
	case n == nil:
		return nil
	case n.Scope != "swarm" || n.Driver != "overlay":
		return fmt.Errorf("network %s is a %s network of scope %s, not an overlay network of the swarm", name, n.Driver, n.Scope)
	case !n.Attachable:
		return fmt.Errorf("network %s is not attachable (docker network create --attachable)", name)
	}
	return nil
}

// joinNetworks connects a container (created, or a running holder) to its
// extra networks, by name, with the address each endpoint names (any
// address without one) and its aliases.
func (m *Manager) joinNetworks(ctx context.Context, id string, eps []api.Endpoint) error {
	for _, ep := range eps {
		settings := &network.EndpointSettings{Aliases: ep.Aliases}
		if ep.IP != "" {
			ip, err := netip.ParseAddr(ep.IP)
			if err != nil {
				return Refuse(errdefs.ErrInvalidArgument, "network %s: address %q: %v", ep.Network, ep.IP, err)
			}
			settings = Endpoint(ip, ep.Aliases)
		}
		if _, err := m.Engine.NetworkConnect(ctx, ep.Network, client.NetworkConnectOptions{Container: id, EndpointConfig: settings}); err != nil {
			return fmt.Errorf("joining network %s: %w", ep.Network, err)
		}
	}
	return nil
}

// checkJoinable refuses, before anything is made, extra networks a fleet
// container may not join.
func (m *Manager) checkJoinable(ctx context.Context, eps []api.Endpoint, fleetNet string) error {
	for _, ep := range eps {
		if err := m.JoinableNetwork(ctx, ep.Network, fleetNet); err != nil {
			return err
		}
	}
	return nil
}

// serviceEndpoints are a new replica's extra endpoints: any address, the
// service's name, the replica's and the aliases the service gives there.
func serviceEndpoints(req api.CreateRequest) []api.Endpoint {
	if req.Successor != "" {
		// A successor answers to these names only once promoted.
		var eps []api.Endpoint
		for _, n := range req.Service.Networks {
			eps = append(eps, api.Endpoint{Network: n.Name})
		}
		return eps
	}
	return namedEndpoints(req.Service, req.Name)
}

// namedEndpoints are the extra endpoints of the replica called name, with
// the service's name, the replica's and the aliases the service gives.
func namedEndpoints(svc spec.Service, name string) []api.Endpoint {
	var eps []api.Endpoint
	for _, n := range svc.Networks {
		eps = append(eps, api.Endpoint{Network: n.Name, Aliases: append([]string{svc.Name, name}, n.Aliases...)})
	}
	return eps
}
