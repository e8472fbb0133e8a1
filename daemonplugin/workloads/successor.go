package workloads

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
)

// A start-first update makes each replica's successor beside it under a
// name of its own, answering to none of the service's names, so that no
// call reaches it before it is up. Once it is, the CLI retires the replica
// and promotes the successor: it leaves its networks, takes the replica's
// name and joins them again with the service's names. (An engine cannot
// rename a container on an overlay network of the swarm: the service
// record of the new name clashes with the old one's.) Nothing could call
// it by those names before, so leaving breaks no call.

// asSuccessor marks a successor's configuration: the replica it replaces,
// the endpoints it joins at its promotion, and the replica's hostname.
func asSuccessor(req api.CreateRequest, cfg *container.Config) error {
	svc := req.Service
	pending := append([]api.Endpoint{{Network: req.Network, Aliases: replicaAliases(svc, req.Successor)}}, namedEndpoints(svc, req.Successor)...)
	b, err := json.Marshal(pending)
	if err != nil {
		return err
	}
	cfg.Labels[labels.SuccessorOf] = req.Successor
	cfg.Labels[labels.Pending] = string(b)
	if svc.Hostname == "" {
		cfg.Hostname = req.Successor
	}
	return nil
}

// Promote has a successor take its replica's name, which must be free on
// its node, and the service's names.
func (m *Manager) Promote(ctx context.Context, name string, _ api.PromoteRequest) (api.FleetContainer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.fleetInspect(ctx, name)
	if err != nil {
		return api.FleetContainer{}, err
	}
	final := c.Config.Labels[labels.SuccessorOf]
	if final == "" {
		return api.FleetContainer{}, Refuse(errdefs.ErrInvalidArgument, "%s on %s is no successor of a replica", name, m.Node)
	}
	if _, err := m.Engine.ContainerInspect(ctx, final, client.ContainerInspectOptions{}); err == nil {
		return api.FleetContainer{}, Refuse(errdefs.ErrConflict, "%s still exists on %s: it must be gone before %s takes its name", final, m.Node, name)
	}
	if c.NetworkSettings != nil {
		for net := range c.NetworkSettings.Networks {
			if _, err := m.Engine.NetworkDisconnect(ctx, net, client.NetworkDisconnectOptions{Container: c.ID}); err != nil {
				return api.FleetContainer{}, fmt.Errorf("promoting %s on %s: leaving network %s: %w", name, m.Node, net, err)
			}
		}
	}
	if _, err := m.Engine.ContainerRename(ctx, c.ID, client.ContainerRenameOptions{NewName: final}); err != nil {
		return api.FleetContainer{}, fmt.Errorf("promoting %s on %s: %w", name, m.Node, err)
	}
	if err := m.joinPending(ctx, c); err != nil {
		return api.FleetContainer{}, fmt.Errorf("promoting %s on %s: %w", name, m.Node, err)
	}
	return m.inspect(ctx, c.ID)
}

// joinPending connects a successor to its networks with the names it was
// kept from.
func (m *Manager) joinPending(ctx context.Context, c container.InspectResponse) error {
	var pending []api.Endpoint
	if err := json.Unmarshal([]byte(c.Config.Labels[labels.Pending]), &pending); err != nil {
		return fmt.Errorf("its pending endpoints: %w", err)
	}
	for _, ep := range pending {
		if _, err := m.Engine.NetworkConnect(ctx, ep.Network, client.NetworkConnectOptions{Container: c.ID,
			EndpointConfig: &network.EndpointSettings{Aliases: ep.Aliases}}); err != nil {
			return fmt.Errorf("joining network %s: %w", ep.Network, err)
		}
	}
	return nil
}
