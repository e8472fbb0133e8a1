package workloads

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/spec"
)

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
