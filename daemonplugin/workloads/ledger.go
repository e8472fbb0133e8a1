package workloads

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	units "github.com/docker/go-units"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/daemonplugin/ledger"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/labels"
)

// state is the node as the engine has it now.
type state struct {
	book        *ledger.Book
	containers  []api.FleetContainer
	memTotal    int64
	memReserved int64
	// ports are the fixed host ports the node's containers publish.
	ports []api.HostPort
}

func (m *Manager) read(ctx context.Context) (*state, error) {
	cores, err := m.Cores()
	if err != nil {
		return nil, err
	}
	if m.memTotal == 0 {
		info, err := m.Engine.Info(ctx, client.InfoOptions{})
		if err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
		m.memTotal = info.Info.MemTotal
	}
	list, err := m.Engine.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	st := &state{memTotal: m.memTotal}
	var pinned []ledger.Pinned
	for _, c := range list.Items {
		res, err := m.Engine.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if errdefs.IsNotFound(err) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
		ctr := res.Container
		set, _ := cpuset.Parse(ctr.HostConfig.CpusetCpus)
		_, fleet := ctr.Config.Labels[labels.Service]
		if m.Wanted != nil {
			// A container the shared pool narrowed holds what it asked for.
			if want, ok := m.Wanted(ctr.ID); ok {
				set, _ = cpuset.Parse(want)
			}
		}
		fc := m.fleetContainer(ctx, ctr)
		pinned = append(pinned, ledger.Pinned{Name: fc.Name, Cpuset: set, Fleet: fleet, Exclusive: fc.Exclusive})
		st.ports = append(st.ports, containerPorts(ctr)...)
		if fleet {
			st.containers = append(st.containers, fc)
			st.memReserved += fc.Memory
		}
	}
	st.book = ledger.New(m.Node, cores, pinned)
	sortPorts(st.ports)
	return st, nil
}

// checkMemory refuses more memory than the node has not yet reserved.
func (st *state) checkMemory(node string, want int64) error {
	if free := st.memTotal - st.memReserved; want > free {
		return Refuse(errdefs.ErrConflict, "node %s has %s of memory not yet reserved, %s needed",
			node, units.BytesSize(float64(free)), units.BytesSize(float64(want)))
	}
	return nil
}

// Ledger reports the node's cores, memory, fleet containers and taken host
// ports.
func (m *Manager) Ledger(ctx context.Context) (api.Ledger, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, err := m.read(ctx)
	if err != nil {
		return api.Ledger{}, err
	}
	l := api.Ledger{
		Node:        m.Node,
		Cores:       st.book.Cores(),
		Held:        st.book.Holds(),
		MemTotal:    st.memTotal,
		MemReserved: st.memReserved,
		Containers:  st.containers,
		Ports:       st.ports,
	}
	if m.Standbys != nil {
		l.Standbys = m.Standbys()
	}
	return l, nil
}
