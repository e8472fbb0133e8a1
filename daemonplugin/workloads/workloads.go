// Package workloads is the agent's container work on its own engine: create,
// resize and remove fleet containers, each under the node's ledger lock, so
// that this agent is the one authority over which cores its node has given.
package workloads

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/daemonplugin/ledger"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/spec"
)

// Kind is an error kind of containerd/errdefs (ErrConflict, …); the agent
// maps kinds to HTTP statuses in one place.
type Kind interface{ WithMessage(string) error }

// Refuse is a refusal of kind k, in words for the user.
func Refuse(k Kind, format string, args ...any) error {
	return k.WithMessage(fmt.Sprintf(format, args...))
}

// Manager does the node's container work.
type Manager struct {
	Node   string
	Engine client.APIClient
	// Cores lists the node's cores (from procfs).
	Cores func() (cpuset.Set, error)
	// Migrating says why a container must not be changed now: a migration
	// of it runs or is being finished (empty: none). The one lock per
	// container that migrate, rm and resize share.
	Migrating func(name string) string
	// Checkpoint reports a container's background checkpoints (every is
	// its interval); Standbys the checkpoints this node keeps for other
	// nodes' containers. Nil: none.
	Checkpoint func(name, every string) *api.CheckpointStatus
	Standbys   func() []api.StandbyCopy
	// FilesDir is where the agent keeps its containers' secrets and
	// configs: the engine's DATA_ROOT/fleet/secrets (files.go); empty:
	// none.
	FilesDir string

	// mu is the ledger lock: every change of cores or memory happens under it.
	mu sync.Mutex
}

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
	info, err := m.Engine.Info(ctx, client.InfoOptions{})
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	list, err := m.Engine.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	st := &state{memTotal: info.Info.MemTotal}
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

// Create makes and starts one replica, its cores, memory and host ports
// taken from the ledger in the same critical section.
func (m *Manager) Create(ctx context.Context, req api.CreateRequest) (api.FleetContainer, error) {
	svc := req.Service
	if err := svc.Validate(); err != nil {
		return api.FleetContainer{}, Refuse(errdefs.ErrInvalidArgument, "%v", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st, err := m.read(ctx)
	if err != nil {
		return api.FleetContainer{}, err
	}
	if _, err := m.Engine.ContainerInspect(ctx, req.Name, client.ContainerInspectOptions{}); err == nil {
		return api.FleetContainer{}, Refuse(errdefs.ErrConflict, "a container named %s already exists on node %s", req.Name, m.Node)
	}
	var cores cpuset.Set
	switch {
	case svc.Cpuset != "":
		want, _ := cpuset.Parse(svc.Cpuset)
		if err := st.book.Claim(want, req.Name); err != nil {
			return api.FleetContainer{}, Refuse(errdefs.ErrConflict, "%v", err)
		}
		cores = want
	case svc.Cores > 0:
		if cores, err = st.book.Take(svc.Cores, req.Name); err != nil {
			return api.FleetContainer{}, Refuse(errdefs.ErrConflict, "%v", err)
		}
	}
	if err := st.checkMemory(m.Node, svc.Memory); err != nil {
		return api.FleetContainer{}, err
	}
	// A conflict, as for cores: the CLI places the replica anew.
	if err := st.checkPorts(m.Node, ServicePorts(svc)); err != nil {
		return api.FleetContainer{}, err
	}
	if err := m.ensureImage(ctx, svc.Image); err != nil {
		return api.FleetContainer{}, err
	}
	if err := m.ensureAnchor(ctx, req.Network); err != nil {
		return api.FleetContainer{}, fmt.Errorf("node %s: %w", m.Node, err)
	}
	opts, err := createOptions(req, cores)
	if err != nil {
		return api.FleetContainer{}, Refuse(errdefs.ErrInvalidArgument, "%v", err)
	}
	copies, err := copiesFor(m.Node, svc.Copies, req.Copies)
	if err != nil {
		return api.FleetContainer{}, err
	}
	created, err := m.createAttached(ctx, opts, req)
	if err != nil {
		return api.FleetContainer{}, fmt.Errorf("creating %s on %s: %w", req.Name, m.Node, err)
	}
	if err := m.copyIn(ctx, created.ID, copies); err != nil {
		m.removeMade(context.WithoutCancel(ctx), created.ID)
		return api.FleetContainer{}, fmt.Errorf("creating %s on %s: %w", req.Name, m.Node, err)
	}
	if err := m.start(ctx, created.ID); err != nil {
		m.removeMade(context.WithoutCancel(ctx), created.ID)
		return api.FleetContainer{}, fmt.Errorf("starting %s on %s: %w", req.Name, m.Node, err)
	}
	return m.inspect(ctx, created.ID)
}

// start starts a container this agent made (Start).
func (m *Manager) start(ctx context.Context, id string) error {
	return Start(ctx, m.Engine, id, client.ContainerStartOptions{})
}

// Start starts a container (or restores it, given a checkpoint). The first
// containers attached to an overlay network on a worker race the engine's
// setup of that network there ("network … not found", before anything of
// the container runs); that passes within moments, so it is tried again.
func Start(ctx context.Context, engine client.APIClient, id string, opts client.ContainerStartOptions) error {
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		if _, err = engine.ContainerStart(ctx, id, opts); err == nil {
			return nil
		}
		if !strings.Contains(err.Error(), "network") || !strings.Contains(err.Error(), "not found") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
	}
	return err
}

// PullImage pulls an image, giving up after a while: a host without a
// registry may take long to say so.
func PullImage(ctx context.Context, engine client.APIClient, image string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	pull, err := engine.ImagePull(ctx, image, client.ImagePullOptions{})
	if err != nil {
		return err
	}
	defer pull.Close()
	return pull.Wait(ctx)
}

func (m *Manager) ensureImage(ctx context.Context, image string) error {
	if _, err := m.Engine.ImageInspect(ctx, image); err == nil {
		return nil
	}
	err := PullImage(ctx, m.Engine, image)
	if err != nil {
		// Not a lost race for cores: the CLI must not place it anew.
		return Refuse(errdefs.ErrNotFound, "image %s is not on node %s and cannot be pulled: %v", image, m.Node, err)
	}
	return nil
}

func createOptions(req api.CreateRequest, cores cpuset.Set) (client.ContainerCreateOptions, error) {
	svc := req.Service
	lbl := map[string]string{}
	for k, v := range svc.Labels {
		lbl[k] = v
	}
	lbl[labels.Service] = svc.Name
	lbl[labels.Replica] = strconv.Itoa(req.Replica)
	lbl[labels.Exclusive] = strconv.FormatBool(len(cores) > 0)
	lbl[labels.NetworkName] = req.Network
	if svc.CheckpointEvery != 0 {
		lbl[labels.CheckpointEvery] = svc.CheckpointEvery.String()
	}
	if svc.Project != "" {
		lbl[labels.Project] = svc.Project
	}
	if svc.Revision != 0 {
		lbl[labels.Revision] = strconv.Itoa(svc.Revision)
	}

	cfg := &container.Config{
		Image:        svc.Image,
		Cmd:          svc.Command,
		Entrypoint:   svc.Entrypoint,
		Env:          svc.Env,
		Labels:       lbl,
		ExposedPorts: network.PortSet{},
		Hostname:     req.Name,
	}
	host := &container.HostConfig{
		NetworkMode:  container.NetworkMode(req.Network),
		PortBindings: network.PortMap{},
	}
	host.CpusetCpus = cores.String()
	host.Memory = svc.Memory
	host.MemorySwap = svc.MemorySwap
	for _, p := range svc.Ports {
		port, err := network.ParsePort(strconv.Itoa(int(p.Container)) + "/" + p.Protocol)
		if err != nil {
			return client.ContainerCreateOptions{}, err
		}
		cfg.ExposedPorts[port] = struct{}{}
		b := network.PortBinding{HostIP: netip.IPv4Unspecified()}
		if p.Host != 0 {
			b.HostPort = strconv.Itoa(int(p.Host))
		}
		host.PortBindings[port] = append(host.PortBindings[port], b)
	}
	for _, v := range svc.Volumes {
		if v.Anonymous() {
			if cfg.Volumes == nil {
				cfg.Volumes = map[string]struct{}{}
			}
			cfg.Volumes[v.Target] = struct{}{}
			continue
		}
		host.Binds = append(host.Binds, v.String())
	}
	if err := applyOptions(cfg, host, svc.Options); err != nil {
		return client.ContainerCreateOptions{}, Refuse(errdefs.ErrInvalidArgument, "%v", err)
	}
	if svc.NetworkMode == spec.HostNetwork {
		// On its node's network: no endpoint, names or bindings of the
		// fleet network, and the node's hostname (docker refuses another).
		// The label names no fleet network, so none is looked for.
		delete(lbl, labels.NetworkName)
		cfg.Hostname = ""
		host.NetworkMode = network.NetworkHost
		host.PortBindings = nil
		return client.ContainerCreateOptions{Name: req.Name, Config: cfg, HostConfig: host}, nil
	}
	aliases := replicaAliases(svc, req.Name)
	if req.Successor != "" {
		if err := asSuccessor(req, cfg); err != nil {
			return client.ContainerCreateOptions{}, err
		}
		aliases = nil
	}
	return client.ContainerCreateOptions{
		Name:       req.Name,
		Config:     cfg,
		HostConfig: host,
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			req.Network: {Aliases: aliases},
		}},
	}, nil
}

// replicaAliases are a replica's names on the fleet network: its
// service's, its own, and the service's container_name.
func replicaAliases(svc spec.Service, name string) []string {
	return append([]string{svc.Name, name}, svc.Aliases...)
}

// Remove removes a fleet container; its cores and memory are free again.
func (m *Manager) Remove(ctx context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.notMigrating(name, "removed"); err != nil {
		return err
	}
	c, err := m.fleetInspect(ctx, name)
	if err != nil {
		return err
	}
	if _, err := m.Engine.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true}); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("removing %s on %s: %w", name, m.Node, err)
	}
	m.removeFilesOf(ctx, c.Mounts)
	return m.removeHolderOf(ctx, c)
}

// notMigrating refuses a change to a container a migration holds.
func (m *Manager) notMigrating(name, what string) error {
	if m.Migrating == nil {
		return nil
	}
	if why := m.Migrating(name); why != "" {
		return Refuse(errdefs.ErrConflict, "%s cannot be %s on %s now: %s; try again when it ends", name, what, m.Node, why)
	}
	return nil
}

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
			return api.FleetContainer{}, Refuse(errdefs.ErrInvalidArgument, "--cpuset-cpus %q: not a cpu list", *req.Cpuset)
		}
		if err := st.book.Claim(want, name); err != nil {
			return api.FleetContainer{}, Refuse(errdefs.ErrConflict, "%v", err)
		}
		res.CpusetCpus, exclusive = want.String(), true
	case req.Cores != nil:
		if *req.Cores < 1 {
			return api.FleetContainer{}, Refuse(errdefs.ErrInvalidArgument, "--cpus %d: at least one core", *req.Cores)
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
		return api.FleetContainer{}, Refuse(errdefs.ErrInvalidArgument, "%s was created without exclusive cores; re-create it with --cpus to pin it", name)
	}
	memory, swap := cur.Memory, cur.MemorySwap
	if req.Memory != nil {
		memory = *req.Memory
		if memory < spec.MinMemory {
			return api.FleetContainer{}, Refuse(errdefs.ErrInvalidArgument, "--memory %s: below the engine's minimum of 6MiB", units.BytesSize(float64(memory)))
		}
		if free := st.memTotal - st.memReserved + cur.Memory; memory > free {
			return api.FleetContainer{}, Refuse(errdefs.ErrConflict, "--memory %s: node %s has %s for %s", units.BytesSize(float64(memory)), m.Node, units.BytesSize(float64(free)), name)
		}
		used, err := m.MemoryUsage(ctx, name)
		if err != nil {
			return api.FleetContainer{}, err
		}
		if memory < used {
			return api.FleetContainer{}, Refuse(errdefs.ErrConflict, "--memory %s is below what %s uses now (%s): the kernel would kill it",
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
		return api.FleetContainer{}, Refuse(errdefs.ErrInvalidArgument, "--memory-swap %s: below the memory limit %s", units.BytesSize(float64(swap)), units.BytesSize(float64(memory)))
	}
	res.Memory, res.MemorySwap = memory, swap
	if _, err := m.Engine.ContainerUpdate(ctx, name, client.ContainerUpdateOptions{Resources: &res}); err != nil {
		return api.FleetContainer{}, fmt.Errorf("updating %s on %s: %w", name, m.Node, err)
	}
	return m.inspect(ctx, name)
}

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

// Fence removes this node's copies of containers that were relocated while
// the node was taken for dead: they run elsewhere now, and a second copy
// must not run (or be started) here.
func (m *Manager) Fence(ctx context.Context, req api.FenceRequest) (api.FenceResult, error) {
	var res api.FenceResult
	if len(req.Containers) == 0 {
		return res, Refuse(errdefs.ErrInvalidArgument, "containers: none named")
	}
	for _, name := range req.Containers {
		err := m.Remove(ctx, name)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return res, err
		}
		res.Removed = append(res.Removed, name)
		log.Printf("fenced: removed %s, which was relocated while this node was taken for dead", name)
	}
	return res, nil
}
