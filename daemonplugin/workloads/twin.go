package workloads

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/labels"
)

// migrationLabel marks a twin made by a migration; one that never started
// is a leftover of a migration that broke off.
const migrationLabel = labels.Prefix + ".migration"

// CanTake checks, for a migration's prepare step, that the node could take a
// container with these needs now (its host ports: CreateTwin).
func (m *Manager) CanTake(ctx context.Context, cores int, memory int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, err := m.read(ctx)
	if err != nil {
		return err
	}
	if cores > 0 {
		if _, err := st.book.Take(cores, ""); err != nil {
			return Refuse(errdefs.ErrConflict, "%v", err)
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
	// Volumes maps each volume's name on the source to the host path of
	// the fresh volume made for it here; Renamed lists those that got a new
	// name because one of theirs existed here already.
	Volumes map[string]string
	Renamed map[string]string
	// CreatedVolumes are the volumes made for the twin, removed with it.
	CreatedVolumes []string
	// HolderID and HolderPid name the network holder the twin joins, if
	// it was made with one.
	HolderID  string
	HolderPid int
	// FilesDir holds its secrets and configs, as the engine sees it
	// ("" without).
	FilesDir string
}

// CreateTwin creates the destination container of a migration under the
// ledger lock: as many exclusive cores as the source had (the cpuset may
// differ), the same memory limit, configuration, IP and aliases, extra
// networks (joined with their addresses before the restore), secrets and
// configs. With
// lockHolder, a running network holder, its namespace locked by lockHolder
// before the address moves in, carries the IP, aliases, ports and hostname,
// and the twin joins its namespace.
func (m *Manager) CreateTwin(ctx context.Context, h api.ReceiveHeader, lockHolder func(pid int) error) (*Twin, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, err := m.read(ctx)
	if err != nil {
		return nil, err
	}
	var cores cpuset.Set
	if h.Cores > 0 {
		if cores, err = st.book.Take(h.Cores, h.Name); err != nil {
			return nil, Refuse(errdefs.ErrConflict, "%v", err)
		}
	}
	if err := st.checkMemory(m.Node, h.Memory); err != nil {
		return nil, err
	}
	// Taken since the prepare, or the source is older and did not say:
	// refused here rather than by the engine at the restore.
	if err := st.checkPorts(m.Node, hostPorts(h.Ports, h.Name)); err != nil {
		return nil, err
	}
	if err := m.ensureAnchor(ctx, h.Network); err != nil {
		return nil, fmt.Errorf("node %s: %w", m.Node, err)
	}
	twin := &Twin{Name: h.Name, Cpuset: cores.String(), Volumes: map[string]string{}, Renamed: map[string]string{}}
	var binds []string
	names := map[string]string{} // source name → name here
	for _, v := range h.Volumes {
		if _, made := names[v.Name]; !made { // a volume mounted twice is made once
			name, mountpoint, err := m.freshVolume(ctx, v.Name, h.ID)
			if err != nil {
				m.RemoveTwin(context.WithoutCancel(ctx), twin)
				return nil, fmt.Errorf("node %s: volume %s: %w", m.Node, v.Name, err)
			}
			names[v.Name] = name
			twin.CreatedVolumes = append(twin.CreatedVolumes, name)
			twin.Volumes[v.Name] = mountpoint
			if name != v.Name {
				twin.Renamed[v.Name] = name
			}
		}
		b := names[v.Name] + ":" + v.Target
		if v.ReadOnly {
			b += ":ro"
		}
		binds = append(binds, b)
	}
	ip, err := netip.ParseAddr(h.IP)
	if err != nil {
		return nil, Refuse(errdefs.ErrInvalidArgument, "ip %q: %v", h.IP, err)
	}
	cfg := h.Config
	cfg.Labels = withLabel(cfg.Labels, migrationLabel, h.ID)
	// The source's options, then what is this node's own.
	host := new(CarryHostConfig(h.HostConfig))
	// Not restarted by its engine until it is the container: a fenced copy
	// that dies must stay dead (the migration's commit gives the policy).
	host.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyDisabled}
	host.NetworkMode = container.NetworkMode(h.Network)
	host.PortBindings = h.Ports
	host.Binds = binds
	host.CpusetCpus = twin.Cpuset
	host.Memory = h.Memory
	host.MemorySwap = h.MemorySwap
	if twin.FilesDir, err = m.mountFiles(ctx, host, h.Name, h.Files); err != nil {
		m.RemoveTwin(context.WithoutCancel(ctx), twin)
		return nil, fmt.Errorf("node %s: %w", m.Node, err)
	}
	netcfg := endpointConfig(h.Network, ip, h.Aliases)
	if lockHolder != nil {
		hc, err := m.createHolder(ctx, h, ip, lockHolder)
		if err != nil {
			m.RemoveTwin(context.WithoutCancel(ctx), twin)
			return nil, err
		}
		twin.HolderID, twin.HolderPid = hc.ID, hc.State.Pid
		joinHolder(&cfg, host, hc.ID)
		netcfg = nil
	}
	created, err := m.createOnNetwork(ctx, client.ContainerCreateOptions{
		Name:             h.Name,
		Config:           &cfg,
		HostConfig:       host,
		NetworkingConfig: netcfg,
	}, h.Network)
	if err != nil {
		m.RemoveTwin(context.WithoutCancel(ctx), twin)
		return nil, fmt.Errorf("creating %s on %s: %w", h.Name, m.Node, err)
	}
	twin.ID = created.ID
	// A holder carries the extra endpoints too.
	if twin.HolderID == "" {
		if err := m.joinNetworks(ctx, created.ID, h.Extra); err != nil {
			m.RemoveTwin(context.WithoutCancel(ctx), twin)
			return nil, fmt.Errorf("node %s: %s: %w", m.Node, h.Name, err)
		}
	}
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

// freshVolume makes an empty volume for a migrating one: under its own name
// when that is free here, else under a new one, so that a migration never
// writes into a volume that merely has the same name (another replica's).
func (m *Manager) freshVolume(ctx context.Context, name, migration string) (string, string, error) {
	for _, candidate := range []string{name, name + "-" + migration[:min(8, len(migration))]} {
		// The engine answers a create of an existing volume with that
		// volume: only the label tells a fresh one, race-free.
		v, err := m.Engine.VolumeCreate(ctx, client.VolumeCreateOptions{Name: candidate,
			Labels: map[string]string{migrationLabel: migration}})
		if err != nil {
			return "", "", err
		}
		if v.Volume.Labels[migrationLabel] == migration {
			return candidate, v.Volume.Mountpoint, nil
		}
	}
	return "", "", Refuse(errdefs.ErrConflict, "volumes %s and %s-%s both exist already", name, name, migration[:min(8, len(migration))])
}

func withLabel(l map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(l)+1)
	for k, v := range l {
		out[k] = v
	}
	out[k] = v
	return out
}

// RemoveTwin undoes CreateTwin: the container, its holder, the volumes
// it created and its files.
func (m *Manager) RemoveTwin(ctx context.Context, t *Twin) {
	for _, id := range []string{t.ID, t.HolderID} {
		if id != "" {
			_, _ = m.Engine.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
		}
	}
	m.RemoveFiles(ctx, t.FilesDir)
	for _, v := range t.CreatedVolumes {
		_, _ = m.Engine.VolumeRemove(ctx, v, client.VolumeRemoveOptions{Force: true})
	}
}

// RemoveMigration removes every container and volume labelled with
// migration id (its twin, holder and fresh volumes), and reports what
// could not be removed.
func (m *Manager) RemoveMigration(ctx context.Context, id string) error {
	f := make(client.Filters).Add("label", migrationLabel+"="+id)
	list, err := m.Engine.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return err
	}
	for _, c := range list.Items {
		if _, err := m.Engine.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	}
	vols, err := m.Engine.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return err
	}
	for _, v := range vols.Items {
		if _, err := m.Engine.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// CleanupIncoming removes twins that never ran: left by a migration that
// broke off while this agent or its engine was down; then the holders and
// files whose containers are gone.
func (m *Manager) CleanupIncoming(ctx context.Context) {
	list, err := m.Engine.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", migrationLabel).Add("status", "created")})
	if err != nil {
		return
	}
	for _, c := range list.Items {
		_, _ = m.Engine.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
	}
	m.cleanupHolders(ctx)
	m.cleanupFiles(ctx)
}
