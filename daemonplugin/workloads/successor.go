package workloads

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
)

// A start-first update makes each replica's successor beside it under a
// name of its own, answering to none of the service's names, so that no
// call reaches it before it is up. Once it is, PromoteJoin gives it those
// names (it answers beside the replica), the CLI retires the replica, and
// PromoteName renames the successor to the replica's name.

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

// Promote carries out one step of a successor's promotion.
func (m *Manager) Promote(ctx context.Context, name string, req api.PromoteRequest) (api.FleetContainer, error) {
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
	switch req.Step {
	case api.PromoteJoin:
		err = m.joinPending(ctx, c)
	case api.PromoteName:
		if _, ierr := m.Engine.ContainerInspect(ctx, final, client.ContainerInspectOptions{}); ierr == nil {
			return api.FleetContainer{}, Refuse(errdefs.ErrConflict, "%s still exists on %s: it must be gone before %s takes its name", final, m.Node, name)
		}
		_, err = m.Engine.ContainerRename(ctx, c.ID, client.ContainerRenameOptions{NewName: final})
	default:
		return api.FleetContainer{}, Refuse(errdefs.ErrInvalidArgument, "promotion step %q: use %s or %s", req.Step, api.PromoteJoin, api.PromoteName)
	}
	if err != nil {
		return api.FleetContainer{}, fmt.Errorf("promoting %s on %s (%s): %w", name, m.Node, req.Step, err)
	}
	return m.inspect(ctx, c.ID)
}

// joinPending connects a successor anew to each of its networks with the
// names it was kept from; an endpoint that has them already is left as it
// is, so that the step may be repeated.
func (m *Manager) joinPending(ctx context.Context, c container.InspectResponse) error {
	var pending []api.Endpoint
	if err := json.Unmarshal([]byte(c.Config.Labels[labels.Pending]), &pending); err != nil {
		return fmt.Errorf("its pending endpoints: %w", err)
	}
	for _, ep := range pending {
		if c.NetworkSettings != nil {
			if cur, ok := c.NetworkSettings.Networks[ep.Network]; ok && cur != nil && containsAll(cur.Aliases, ep.Aliases) {
				continue
			}
		}
		_, _ = m.Engine.NetworkDisconnect(ctx, ep.Network, client.NetworkDisconnectOptions{Container: c.ID})
		if _, err := m.Engine.NetworkConnect(ctx, ep.Network, client.NetworkConnectOptions{Container: c.ID,
			EndpointConfig: &network.EndpointSettings{Aliases: ep.Aliases}}); err != nil {
			return fmt.Errorf("joining network %s: %w", ep.Network, err)
		}
	}
	return nil
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
