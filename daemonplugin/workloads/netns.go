package workloads

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
)

// A container restored on an engine that cannot set a restored container's
// network up (enginecompat.NeedsNetnsHolder) lives in the network namespace
// of a holder: an anchor-image container that carries its endpoint (address,
// aliases, published ports) and its hostname, as a pause container does for
// a pod. The two move and go together; the holder is no fleet container of
// its own (no service label) and holds no cores.

// HolderName is the name of the holder of the container called name.
func HolderName(name string) string { return name + ".netns" }

// Carrier is the container whose endpoint carries c's network: c itself, or
// the holder whose namespace it joined.
func (m *Manager) Carrier(ctx context.Context, c container.InspectResponse) (container.InspectResponse, error) {
	if c.HostConfig == nil || !c.HostConfig.NetworkMode.IsContainer() {
		return c, nil
	}
	res, err := m.Engine.ContainerInspect(ctx, c.HostConfig.NetworkMode.ConnectedContainer(), client.ContainerInspectOptions{})
	if err != nil {
		return c, fmt.Errorf("the network holder of %s: %w", trimSlash(c.Name), err)
	}
	return res.Container, nil
}

// IsHolder reports whether c is a network holder.
func IsHolder(c container.InspectResponse) bool {
	return c.Config != nil && c.Config.Labels[labels.NetnsOf] != ""
}

// createHolder creates and starts the holder of a migration's twin with the
// source's published ports and hostname, has lock lock its namespace, and
// only then gives it the source's addresses and aliases (on the fleet
// network and the extra ones): a peer's packet
// never meets the namespace unlocked before the sockets are back. It returns
// the holder inspected. Callers hold m.mu.
func (m *Manager) createHolder(ctx context.Context, h api.ReceiveHeader, ip netip.Addr, lock func(pid int) error) (container.InspectResponse, error) {
	created, err := m.Engine.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: HolderName(h.Name),
		Config: &container.Config{
			Image:        anchorImage,
			Hostname:     h.Config.Hostname,
			Domainname:   h.Config.Domainname,
			ExposedPorts: h.Config.ExposedPorts,
			Labels:       map[string]string{labels.NetnsOf: h.Name, labels.NetworkName: h.Network, migrationLabel: h.ID},
		},
		HostConfig: &container.HostConfig{
			NetworkMode:  container.NetworkMode(h.Network),
			PortBindings: h.Ports,
			Resources:    container.Resources{Memory: 16 << 20},
		},
		// Any address first: the engine sets the network up at start,
		// before the namespace can be locked.
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{h.Network: {}}},
	})
	if err != nil {
		return container.InspectResponse{}, fmt.Errorf("creating the network holder of %s on %s: %w", h.Name, m.Node, err)
	}
	fail := func(what string, err error) (container.InspectResponse, error) {
		_, _ = m.Engine.ContainerRemove(context.WithoutCancel(ctx), created.ID, client.ContainerRemoveOptions{Force: true})
		return container.InspectResponse{}, fmt.Errorf("%s the network holder of %s on %s: %w", what, h.Name, m.Node, err)
	}
	if err := m.start(ctx, created.ID); err != nil {
		return fail("starting", err)
	}
	res, err := m.Engine.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{})
	if err != nil {
		return fail("inspecting", err)
	}
	if err := lock(res.Container.State.Pid); err != nil {
		return fail("locking", err)
	}
	if _, err := m.Engine.NetworkDisconnect(ctx, h.Network, client.NetworkDisconnectOptions{Container: created.ID, Force: true}); err != nil {
		return fail("addressing", err)
	}
	if _, err := m.Engine.NetworkConnect(ctx, h.Network, client.NetworkConnectOptions{Container: created.ID,
		EndpointConfig: Endpoint(ip, h.Aliases)}); err != nil {
		return fail("addressing", err)
	}
	if err := m.joinNetworks(ctx, created.ID, h.Extra); err != nil {
		return fail("addressing", err)
	}
	return res.Container, nil
}

// joinHolder makes a twin's configuration join the holder's namespace: what
// the holder carries, the engine refuses on a container that joins
// another's network.
func joinHolder(cfg *container.Config, host *container.HostConfig, holderID string) {
	cfg.Hostname, cfg.Domainname, cfg.ExposedPorts = "", "", nil
	host.NetworkMode = container.NetworkMode("container:" + holderID)
	host.PortBindings = nil
}

func endpointConfig(net string, ip netip.Addr, aliases []string) *network.NetworkingConfig {
	return &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{net: Endpoint(ip, aliases)}}
}

// Endpoint is a fleet container's endpoint on a network (the fleet
// network, or an extra one): its fixed address and its aliases.
func Endpoint(ip netip.Addr, aliases []string) *network.EndpointSettings {
	return &network.EndpointSettings{IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: ip}, Aliases: aliases}
}

// removeHolderOf removes the holder whose namespace c joined, if any.
func (m *Manager) removeHolderOf(ctx context.Context, c container.InspectResponse) error {
	carrier, err := m.Carrier(ctx, c)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return err
	}
	if carrier.ID == c.ID || !IsHolder(carrier) {
		return nil
	}
	if _, err := m.Engine.ContainerRemove(ctx, carrier.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("removing the network holder of %s on %s: %w", trimSlash(c.Name), m.Node, err)
	}
	return nil
}

// cleanupHolders removes holders whose container is gone or never joined
// them: left by a migration that broke off while this agent was down.
func (m *Manager) cleanupHolders(ctx context.Context) {
	list, err := m.Engine.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", labels.NetnsOf)})
	if err != nil {
		return
	}
	for _, hc := range list.Items {
		of := hc.Labels[labels.NetnsOf]
		res, err := m.Engine.ContainerInspect(ctx, of, client.ContainerInspectOptions{})
		if err != nil && !errdefs.IsNotFound(err) {
			continue
		}
		if err == nil && res.Container.HostConfig.NetworkMode.ConnectedContainer() == hc.ID {
			continue
		}
		_, _ = m.Engine.ContainerRemove(ctx, hc.ID, client.ContainerRemoveOptions{Force: true})
	}
}
