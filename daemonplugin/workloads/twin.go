package workloads

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/labels"
)

// migrationLabel marks a twin made by a migration; one that never started
// is a leftover of a migration that broke off.
const migrationLabel = labels.Prefix + ".migration"

// CanTake checks, for a migration's prepare step, that the node could take a
// container with these needs now.
func (m *Manager) CanTake(ctx context.Context, cores int, memory int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, err := m.read(ctx)
	if err != nil {
		return err
	}
	if cores > 0 {
		if _, err := st.book.Take(cores, ""); err != nil {
			return refuse(http.StatusConflict, "%v", err)
		}
	}
	return st.checkMemory(m.Node, memory)
}

// Twin is a migration's destination container, created but not started.
type Twin struct {
	ID     string
	Name   string
	Cpuset string
	// UpperDir is the host path of its writable layer.
	UpperDir string
	// CreatedVolumes are the named volumes this node did not have before.
	CreatedVolumes []string
}

// CreateTwin creates the destination container of a migration under the
// ledger lock: as many exclusive cores as the source had (the cpuset may
// differ), the same memory limit, configuration, IP and aliases.
func (m *Manager) CreateTwin(ctx context.Context, h api.ReceiveHeader) (*Twin, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, err := m.read(ctx)
	if err != nil {
		return nil, err
	}
	var cores cpuset.Set
	if h.Cores > 0 {
		if cores, err = st.book.Take(h.Cores, h.Name); err != nil {
			return nil, refuse(http.StatusConflict, "%v", err)
		}
	}
	if err := st.checkMemory(m.Node, h.Memory); err != nil {
		return nil, err
	}
	if err := m.ensureAnchor(ctx, h.Network); err != nil {
		return nil, fmt.Errorf("node %s: %w", m.Node, err)
	}
	twin := &Twin{Name: h.Name, Cpuset: cores.String()}
	for _, v := range h.Volumes {
		if _, err := m.Engine.VolumeInspect(ctx, v, client.VolumeInspectOptions{}); errdefs.IsNotFound(err) {
			if _, err := m.Engine.VolumeCreate(ctx, client.VolumeCreateOptions{Name: v}); err != nil {
				m.RemoveTwin(context.WithoutCancel(ctx), twin)
				return nil, fmt.Errorf("creating volume %s: %w", v, err)
			}
			twin.CreatedVolumes = append(twin.CreatedVolumes, v)
		}
	}
	ip, err := netip.ParseAddr(h.IP)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "ip %q: %v", h.IP, err)
	}
	cfg := h.Config
	cfg.Labels = withLabel(cfg.Labels, migrationLabel, h.ID)
	host := &container.HostConfig{
		NetworkMode:  container.NetworkMode(h.Network),
		PortBindings: h.Ports,
		Binds:        h.Binds,
	}
	host.CpusetCpus = twin.Cpuset
	host.Memory = h.Memory
	host.MemorySwap = h.MemorySwap
	created, err := m.Engine.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:       h.Name,
		Config:     &cfg,
		HostConfig: host,
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			h.Network: {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: ip}, Aliases: h.Aliases},
		}},
	})
	if err != nil {
		m.RemoveTwin(context.WithoutCancel(ctx), twin)
		return nil, fmt.Errorf("creating %s on %s: %w", h.Name, m.Node, err)
	}
	twin.ID = created.ID
	res, err := m.Engine.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{})
	if err != nil {
		m.RemoveTwin(context.WithoutCancel(ctx), twin)
		return nil, err
	}
	if res.Container.GraphDriver != nil {
		twin.UpperDir = res.Container.GraphDriver.Data["UpperDir"]
	}
	if twin.UpperDir == "" {
		m.RemoveTwin(context.WithoutCancel(ctx), twin)
		return nil, fmt.Errorf("node %s: the engine's storage driver has no writable layer directory (overlay2 is needed)", m.Node)
	}
	return twin, nil
}

func withLabel(l map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(l)+1)
	for k, v := range l {
		out[k] = v
	}
	out[k] = v
	return out
}

// RemoveTwin undoes CreateTwin: the container and the volumes it created.
func (m *Manager) RemoveTwin(ctx context.Context, t *Twin) {
	if t.ID != "" {
		_, _ = m.Engine.ContainerRemove(ctx, t.ID, client.ContainerRemoveOptions{Force: true})
	}
	for _, v := range t.CreatedVolumes {
		_, _ = m.Engine.VolumeRemove(ctx, v, client.VolumeRemoveOptions{Force: true})
	}
}

// CleanupIncoming removes twins that never ran: left by a migration that
// broke off while this agent or its engine was down.
func (m *Manager) CleanupIncoming(ctx context.Context) {
	list, err := m.Engine.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", migrationLabel).Add("status", "created")})
	if err != nil {
		return
	}
	for _, c := range list.Items {
		_, _ = m.Engine.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
	}
}
