package workloads

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/spec"
)

// Resize changes a container's cpuset and memory in place (docker update):
// the process keeps running.
func (m *Manager) Resize(ctx context.Context, name string, req api.ResizeRequest) (api.FleetContainer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.notMigrating(name, "resized"); err != nil {
		return api.FleetContainer{}, err
	}
	ctr, err := m.fleetInspect(ctx, name)
	if err != nil {
		return api.FleetContainer{}, err
	}
	st, err := m.read(ctx)
	if err != nil {
		return api.FleetContainer{}, err
	}
	cur := m.fleetContainer(ctx, ctr)
	res := container.Resources{CpusetCpus: ctr.HostConfig.CpusetCpus}
	exclusive := cur.Exclusive
	switch {
	case req.Cpuset != nil:
		want, err := cpuset.Parse(*req.Cpuset)
		if err != nil || len(want) == 0 {
			return api.FleetContainer{}, Refuse(errdefs.ErrInvalidArgument, "cpuset-cpus %q: not a cpu list", *req.Cpuset)
		}
		if err := st.book.Claim(want, name); err != nil {
			return api.FleetContainer{}, Refuse(errdefs.ErrConflict, "%v", err)
		}
		res.CpusetCpus, exclusive = want.String(), true
	case req.Cores != nil:
		if *req.Cores < 1 {
			return api.FleetContainer{}, Refuse(errdefs.ErrInvalidArgument, "cpus %d: at least one core", *req.Cores)
		}
		set, err := st.book.Take(*req.Cores, name)
		if err != nil {
			return api.FleetContainer{}, Refuse(errdefs.ErrConflict, "%v", err)
		}
		res.CpusetCpus, exclusive = set.String(), true
	}
	if exclusive && !cur.Exclusive {
		// Labels cannot change on a container; an unpinned container is
		// pinned by create only.
		return api.FleetContainer{}, Refuse(errdefs.ErrInvalidArgument, "%s was created without exclusive cores; re-create it with exclusive cores (cpus) to pin it", name)
	}
	memory, swap := cur.Memory, cur.MemorySwap
	if req.Memory != nil {
		memory = *req.Memory
		if memory < spec.MinMemory {
			return api.FleetContainer{}, Refuse(errdefs.ErrInvalidArgument, "memory %s: below the engine's minimum of 6MiB", units.BytesSize(float64(memory)))
		}
		if free := st.memTotal - st.memReserved + cur.Memory; memory > free {
			return api.FleetContainer{}, Refuse(errdefs.ErrConflict, "memory %s: node %s has %s for %s", units.BytesSize(float64(memory)), m.Node, units.BytesSize(float64(free)), name)
		}
		used, err := m.MemoryUsage(ctx, name)
		if err != nil {
			return api.FleetContainer{}, err
		}
		if memory < used {
			return api.FleetContainer{}, Refuse(errdefs.ErrConflict, "memory %s is below what %s uses now (%s): the kernel would kill it",
				units.BytesSize(float64(memory)), name, units.BytesSize(float64(used)))
		}
		// The engine keeps swap at twice the memory by default; follow a
		// larger memory limit unless swap was set.
		if req.MemorySwap == nil && swap > 0 && swap < memory {
			swap = 2 * memory
		}
	}
	if req.MemorySwap != nil {
		swap = *req.MemorySwap
	}
	if swap != 0 && swap != -1 && swap < memory {
		return api.FleetContainer{}, Refuse(errdefs.ErrInvalidArgument, "memory-swap %s: below the memory limit %s", units.BytesSize(float64(swap)), units.BytesSize(float64(memory)))
	}
	res.Memory, res.MemorySwap = memory, swap
	if _, err := m.Engine.ContainerUpdate(ctx, name, client.ContainerUpdateOptions{Resources: &res}); err != nil {
		return api.FleetContainer{}, fmt.Errorf("updating %s on %s: %w", name, m.Node, err)
	}
	return m.inspect(ctx, name)
}
