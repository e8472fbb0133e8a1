package workloads

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
)

// Detail is a container with its current usage (the engine samples CPU over
// about a second).
func (m *Manager) Detail(ctx context.Context, name string) (api.ContainerDetail, error) {
	ctr, err := m.fleetInspect(ctx, name)
	if err != nil {
		return api.ContainerDetail{}, err
	}
	d := api.ContainerDetail{FleetContainer: m.fleetContainer(ctx, ctr)}
	carrier, _ := m.Carrier(ctx, ctr)
	for _, ep := range carrier.NetworkSettings.Networks {
		d.Aliases = append(d.Aliases, ep.Aliases...)
	}
	if !ctr.State.Running {
		return d, nil
	}
	st, err := m.stats(ctx, name)
	if err != nil {
		return api.ContainerDetail{}, err
	}
	d.MemoryUsage = workingSet(st.MemoryStats)
	if cpu := st.CPUStats.CPUUsage.TotalUsage - st.PreCPUStats.CPUUsage.TotalUsage; st.PreCPUStats.SystemUsage != 0 {
		if sys := st.CPUStats.SystemUsage - st.PreCPUStats.SystemUsage; sys > 0 {
			d.CPUPercent = float64(cpu) / float64(sys) * float64(st.CPUStats.OnlineCPUs) * 100
		}
	}
	for name, n := range st.Networks {
		d.Networks = append(d.Networks, api.Interface{Name: name, RxBytes: n.RxBytes, TxBytes: n.TxBytes, RxPackets: n.RxPackets, TxPackets: n.TxPackets})
	}
	return d, nil
}

// MemoryUsage is a container's memory in use, as `docker stats` counts it.
func (m *Manager) MemoryUsage(ctx context.Context, name string) (int64, error) {
	st, err := m.stats(ctx, name)
	if err != nil {
		return 0, err
	}
	return workingSet(st.MemoryStats), nil
}

func (m *Manager) stats(ctx context.Context, name string) (container.StatsResponse, error) {
	res, err := m.Engine.ContainerStats(ctx, name, client.ContainerStatsOptions{})
	if err != nil {
		return container.StatsResponse{}, fmt.Errorf("stats of %s: %w", name, err)
	}
	defer res.Body.Close()
	var st container.StatsResponse
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("stats of %s: %w", name, err)
	}
	return st, nil
}

// workingSet is memory use as `docker stats` counts it: the page cache the
// kernel can drop at once does not count.
func workingSet(m container.MemoryStats) int64 {
	used := m.Usage
	for _, k := range []string{"total_inactive_file", "inactive_file"} {
		if v, ok := m.Stats[k]; ok && v < used {
			used -= v
			break
		}
	}
	return int64(used)
}

// fleetInspect inspects a container and makes sure it is a fleet one.
func (m *Manager) fleetInspect(ctx context.Context, name string) (container.InspectResponse, error) {
	res, err := m.Engine.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if errdefs.IsNotFound(err) {
		return container.InspectResponse{}, Refuse(errdefs.ErrNotFound, "no container %s on node %s", name, m.Node)
	}
	if err != nil {
		return container.InspectResponse{}, fmt.Errorf("engine: %w", err)
	}
	if _, ok := res.Container.Config.Labels[labels.Service]; !ok {
		return container.InspectResponse{}, Refuse(errdefs.ErrPermissionDenied, "%s on node %s is not a fleet container", name, m.Node)
	}
	return res.Container, nil
}

func (m *Manager) inspect(ctx context.Context, id string) (api.FleetContainer, error) {
	res, err := m.Engine.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return api.FleetContainer{}, fmt.Errorf("engine: %w", err)
	}
	return m.fleetContainer(ctx, res.Container), nil
}

func (m *Manager) fleetContainer(ctx context.Context, c container.InspectResponse) api.FleetContainer {
	l := c.Config.Labels
	replica, _ := strconv.Atoi(l[labels.Replica])
	fc := api.FleetContainer{
		ID:         c.ID,
		Name:       trimSlash(c.Name),
		Service:    l[labels.Service],
		Replica:    replica,
		Node:       m.Node,
		Image:      c.Config.Image,
		State:      string(c.State.Status),
		Cpuset:     c.HostConfig.CpusetCpus,
		Exclusive:  l[labels.Exclusive] == "true",
		Memory:     c.HostConfig.Memory,
		MemorySwap: c.HostConfig.MemorySwap,
		Pid:        c.State.Pid,
		StartedAt:  c.State.StartedAt,
	}
	if c.State.Health != nil {
		fc.Health = string(c.State.Health.Status)
	}
	if m.CPU != nil && c.State.Running {
		fc.CPU = m.CPU(c.ID)
	}
	// The engine keeps a running container's last exit code too: only a
	// container that has stopped has one worth telling.
	if st := c.State.Status; st == container.StateExited || st == container.StateDead {
		code := c.State.ExitCode
		fc.ExitCode = &code
	}
	if Restarts(c.HostConfig.RestartPolicy) {
		fc.Restart = string(c.HostConfig.RestartPolicy.Name)
	}
	fc.Revision, _ = strconv.Atoi(l[labels.Revision])
	if every := l[labels.CheckpointEvery]; every != "" && m.Checkpoint != nil {
		fc.Checkpoint = m.Checkpoint(fc.Name, every)
	}
	// Only fleet containers can have joined a holder: others cost no lookup.
	carrier := c
	if _, fleet := l[labels.Service]; fleet {
		carrier, _ = m.Carrier(ctx, c)
	}
	if carrier.NetworkSettings != nil {
		if ep, ok := carrier.NetworkSettings.Networks[l[labels.NetworkName]]; ok && ep != nil && ep.IPAddress.IsValid() {
			fc.IP = ep.IPAddress.String()
		}
	}
	return fc
}

func trimSlash(s string) string {
	if len(s) > 0 && s[0] == '/' {
		return s[1:]
	}
	return s
}
