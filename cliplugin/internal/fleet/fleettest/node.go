package fleettest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	units "github.com/docker/go-units"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// Node is one node and its agent, in memory.
type Node struct {
	// Swarm is the node as the swarm lists it: a ready, active worker
	// (New makes one the manager).
	Swarm swarmstore.Node
	// Boot makes a container Create made what it is once started: by
	// default running, and healthy if its service has a healthcheck. It
	// is called with the node locked: it must not call the node.
	Boot func(req api.CreateRequest, c *api.FleetContainer)

	fleet *Fleet

	mu         sync.Mutex
	cores      cpuset.Set
	memTotal   int64
	held       map[int]api.Hold
	containers map[string]*api.FleetContainer
	successors map[string]string // successor → the replica whose name it takes
	ports      []api.HostPort
	images     map[string]string // image → ID
	comingIn   map[string]bool   // image IDs told to expect (ExpectImage)
	expected   map[string]api.Expectation
	migrated   map[string]api.MigrateResult // migrations this node was the source of
	problems   map[string][]string          // what CRIU could not checkpoint, by container
	made       int
	left       bool

	calls map[string]int
	hooks map[string][]hook
	down  error
}

var _ fleet.Agent = (*Node)(nil)

// NewNode is a node of cores cores (0 to cores-1) and memory bytes, with
// no containers and no images.
func NewNode(name string, cores int, memory int64) *Node {
	set := make(cpuset.Set, cores)
	for i := range set {
		set[i] = i
	}
	return &Node{
		Swarm:      swarmstore.Node{ID: "id-" + name, Hostname: name, Role: "worker", State: "ready", Availability: "active", AgentPort: 7970},
		cores:      set,
		memTotal:   memory,
		held:       map[int]api.Hold{},
		containers: map[string]*api.FleetContainer{},
		successors: map[string]string{},
		images:     map[string]string{},
		comingIn:   map[string]bool{},
		expected:   map[string]api.Expectation{},
		migrated:   map[string]api.MigrateResult{},
		problems:   map[string][]string{},
		calls:      map[string]int{},
		hooks:      map[string][]hook{},
	}
}

// ImageID is the ID every fake node gives an image of that name.
func ImageID(image string) string { return "sha256:" + image }

// AddImage gives the node's engine images.
func (n *Node) AddImage(images ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, i := range images {
		n.images[i] = ImageID(i)
	}
}

// Pin holds cores for a container outside the fleet (or another
// command's), as the engine's pinned containers hold them.
func (n *Node) Pin(owner string, cores cpuset.Set) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range cores {
		n.held[c] = api.Hold{Core: c, Container: owner}
	}
}

// Cores are the node's cores.
func (n *Node) Cores() cpuset.Set { return n.cores }

// Container is a fleet container of the node, as its ledger has it.
func (n *Node) Container(name string) (api.FleetContainer, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, ok := n.containers[name]
	if !ok {
		return api.FleetContainer{}, false
	}
	return *c, true
}

// Containers are the names of the node's fleet containers, sorted.
func (n *Node) Containers() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Sorted(maps.Keys(n.containers))
}

// Change changes a container as its engine would (it exits, turns
// unhealthy, …).
func (n *Node) Change(name string, change func(*api.FleetContainer)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c, ok := n.containers[name]; ok {
		change(c)
	}
}

// Left says whether the node's agent was asked to leave the swarm.
func (n *Node) Left() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.left
}

func (n *Node) Info(context.Context) (api.Info, error) {
	if err := n.enter("Info"); err != nil {
		return api.Info{}, err
	}
	return api.Info{Node: n.Swarm.Hostname, AgentVersion: "fleettest", NCPU: len(n.cores), MemTotal: n.memTotal,
		Engine: api.EngineInfo{SwarmNodeID: n.Swarm.ID}, APIVersion: api.APIVersion}, nil
}

func (n *Node) Metrics(context.Context) (api.Metrics, error) {
	if err := n.enter("Metrics"); err != nil {
		return api.Metrics{}, err
	}
	return api.Metrics{Time: time.Now().UTC()}, nil
}

// Ledger is what the node's agent reports: its cores and who holds them,
// its memory, fleet containers and taken host ports.
func (n *Node) Ledger(context.Context) (api.Ledger, error) {
	if err := n.enter("Ledger"); err != nil {
		return api.Ledger{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	l := api.Ledger{Node: n.Swarm.Hostname, Cores: slices.Clone(n.cores), MemTotal: n.memTotal, MemReserved: n.memReserved(),
		Held: []api.Hold{}, Containers: []api.FleetContainer{}, Ports: slices.Clone(n.ports)}
	for _, c := range slices.Sorted(maps.Keys(n.held)) {
		l.Held = append(l.Held, n.held[c])
	}
	for _, name := range slices.Sorted(maps.Keys(n.containers)) {
		l.Containers = append(l.Containers, *n.containers[name])
	}
	return l, nil
}

func (n *Node) Drain(context.Context, api.DrainRequest) (api.DrainResult, error) {
	if err := n.enter("Drain"); err != nil {
		return api.DrainResult{}, err
	}
	return api.DrainResult{}, nil
}

func (n *Node) Leave(context.Context, api.LeaveRequest) error {
	if err := n.enter("Leave"); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.left = true
	return nil
}

// Create makes and starts a replica, its cores, memory and host ports
// booked at once, as the agent does.
func (n *Node) Create(_ context.Context, req api.CreateRequest) (api.FleetContainer, error) {
	if err := n.enter("Create"); err != nil {
		return api.FleetContainer{}, err
	}
	svc := req.Service
	if err := svc.Validate(); err != nil {
		return api.FleetContainer{}, errdefs.ErrInvalidArgument.WithMessage(err.Error())
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.containers[req.Name]; ok {
		return api.FleetContainer{}, errdefs.ErrConflict.WithMessage(fmt.Sprintf("a container named %s already exists on node %s", req.Name, n.Swarm.Hostname))
	}
	var cores cpuset.Set
	switch {
	case svc.Cpuset != "":
		want, _ := cpuset.Parse(svc.Cpuset)
		if err := n.claim(want, req.Name); err != nil {
			return api.FleetContainer{}, err
		}
		cores = want
	case svc.Cores > 0:
		var err error
		if cores, err = n.take(svc.Cores, req.Name); err != nil {
			return api.FleetContainer{}, err
		}
	}
	undo := func() { n.hold(nil, req.Name) }
	if free := n.memTotal - n.memReserved(); svc.Memory > free {
		undo()
		return api.FleetContainer{}, errdefs.ErrConflict.WithMessage(fmt.Sprintf("node %s has %s of memory not yet reserved, %s needed",
			n.Swarm.Hostname, units.BytesSize(float64(free)), units.BytesSize(float64(svc.Memory))))
	}
	var ports []api.HostPort
	for _, p := range svc.Ports {
		if p.Host != 0 {
			ports = append(ports, api.HostPort{Port: p.Host, Protocol: protocol(p.Protocol), Container: req.Name})
		}
	}
	if err := n.portsFree(ports); err != nil {
		undo()
		return api.FleetContainer{}, err
	}
	n.made++
	n.images[svc.Image] = ImageID(svc.Image) // pulled if it was not there
	c := &api.FleetContainer{
		ID: fmt.Sprintf("%s-%d", n.Swarm.Hostname, n.made), Name: req.Name, Service: svc.Name, Replica: req.Replica,
		Node: n.Swarm.Hostname, Image: svc.Image, State: "running", Exclusive: len(cores) > 0, Memory: svc.Memory,
		MemorySwap: svc.MemorySwap, StartedAt: time.Now().UTC().Format(time.RFC3339Nano), Restart: svc.Restart, Revision: svc.Revision,
	}
	if len(cores) > 0 {
		c.Cpuset = cores.String()
	}
	if svc.Healthcheck != nil {
		c.Health = "healthy"
	}
	if n.Boot != nil {
		n.Boot(req, c)
	}
	n.containers[req.Name] = c
	n.ports = append(n.ports, ports...)
	if req.Successor != "" {
		n.successors[req.Name] = req.Successor
	}
	return *c, nil
}

// Remove removes a fleet container and frees what it held.
func (n *Node) Remove(_ context.Context, name string) error {
	if err := n.enter("Remove"); err != nil {
		return err
	}
	return n.drop(name)
}

// Retire is Remove for a replica being replaced (the agent also takes it
// out of its networks first).
func (n *Node) Retire(_ context.Context, name string) error {
	if err := n.enter("Retire"); err != nil {
		return err
	}
	return n.drop(name)
}

func (n *Node) drop(name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.containers[name]; !ok {
		return n.notFound(name)
	}
	delete(n.containers, name)
	delete(n.successors, name)
	n.hold(nil, name)
	n.ports = slices.DeleteFunc(n.ports, func(p api.HostPort) bool { return p.Container == name })
	return nil
}

// Promote has a successor take its replica's name, once the replica is
// gone.
func (n *Node) Promote(_ context.Context, name string, _ api.PromoteRequest) (api.FleetContainer, error) {
	if err := n.enter("Promote"); err != nil {
		return api.FleetContainer{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	c, ok := n.containers[name]
	if !ok {
		return api.FleetContainer{}, n.notFound(name)
	}
	final := n.successors[name]
	if final == "" {
		return api.FleetContainer{}, errdefs.ErrFailedPrecondition.WithMessage(name + " is no successor")
	}
	if _, ok := n.containers[final]; ok {
		return api.FleetContainer{}, errdefs.ErrConflict.WithMessage(fmt.Sprintf("%s still exists on %s: it must be gone before %s takes its name", final, n.Swarm.Hostname, name))
	}
	delete(n.containers, name)
	delete(n.successors, name)
	c.Name = final
	n.containers[final] = c
	for core, h := range n.held {
		if h.Container == name {
			n.held[core] = api.Hold{Core: core, Container: final, Fleet: true}
		}
	}
	for i := range n.ports {
		if n.ports[i].Container == name {
			n.ports[i].Container = final
		}
	}
	return *c, nil
}

// Resize changes a container's cores and memory in place, refused as the
// agent refuses it.
func (n *Node) Resize(_ context.Context, name string, req api.ResizeRequest) (api.FleetContainer, error) {
	if err := n.enter("Resize"); err != nil {
		return api.FleetContainer{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	c, ok := n.containers[name]
	if !ok {
		return api.FleetContainer{}, n.notFound(name)
	}
	if (req.Cpuset != nil || req.Cores != nil) && !c.Exclusive {
		return api.FleetContainer{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("%s was created without exclusive cores; re-create it with exclusive cores (cpus) to pin it", name))
	}
	memory, swap := c.Memory, c.MemorySwap
	if req.Memory != nil {
		memory = *req.Memory
		if free := n.memTotal - n.memReserved() + c.Memory; memory > free {
			return api.FleetContainer{}, errdefs.ErrConflict.WithMessage(fmt.Sprintf("memory %s: node %s has %s for %s",
				units.BytesSize(float64(memory)), n.Swarm.Hostname, units.BytesSize(float64(free)), name))
		}
		if req.MemorySwap == nil && swap > 0 && swap < memory {
			swap = 2 * memory
		}
	}
	if req.MemorySwap != nil {
		swap = *req.MemorySwap
	}
	switch {
	case req.Cpuset != nil:
		want, err := cpuset.Parse(*req.Cpuset)
		if err != nil || len(want) == 0 {
			return api.FleetContainer{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("cpuset-cpus %q: not a cpu list", *req.Cpuset))
		}
		if err := n.claim(want, name); err != nil {
			return api.FleetContainer{}, err
		}
	case req.Cores != nil:
		if *req.Cores < 1 {
			return api.FleetContainer{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("cpus %d: at least one core", *req.Cores))
		}
		if _, err := n.take(*req.Cores, name); err != nil {
			return api.FleetContainer{}, err
		}
	}
	if c.Exclusive {
		c.Cpuset = n.holdsOf(name).String()
	}
	c.Memory, c.MemorySwap = memory, swap
	return *c, nil
}

// Detail is a container with its usage (none here).
func (n *Node) Detail(_ context.Context, name string) (api.ContainerDetail, error) {
	if err := n.enter("Detail"); err != nil {
		return api.ContainerDetail{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	c, ok := n.containers[name]
	if !ok {
		return api.ContainerDetail{}, n.notFound(name)
	}
	return api.ContainerDetail{FleetContainer: *c}, nil
}

// memReserved is what the node's fleet containers reserve.
func (n *Node) memReserved() int64 {
	var sum int64
	for _, c := range n.containers {
		sum += c.Memory
	}
	return sum
}

// holdsOf is the cores owner holds.
func (n *Node) holdsOf(owner string) cpuset.Set {
	var out []int
	for c, h := range n.held {
		if h.Container == owner {
			out = append(out, c)
		}
	}
	return cpuset.Of(out...)
}

// take books k cores for owner, those it holds first, then the lowest
// free ones (ledger.Book.Take).
func (n *Node) take(k int, owner string) (cpuset.Set, error) {
	mine := n.holdsOf(owner)
	var others []int
	for _, c := range n.cores {
		if _, taken := n.held[c]; !taken {
			others = append(others, c)
		}
	}
	if len(mine)+len(others) < k {
		return nil, errdefs.ErrConflict.WithMessage(fmt.Sprintf("node %s has %d of %d cores free, %d asked", n.Swarm.Hostname, len(mine)+len(others), len(n.cores), k))
	}
	set := cpuset.Of(append(slices.Clone(mine), others...)[:k]...)
	if err := n.keepsShared(set, owner); err != nil {
		return nil, err
	}
	n.hold(set, owner)
	return set, nil
}

// keepsShared refuses what would leave fewer than api.MinSharedCores
// cores unheld by the fleet (ledger.Book.keepsShared).
func (n *Node) keepsShared(set cpuset.Set, owner string) error {
	var fleet []int
	for c, h := range n.held {
		if h.Fleet && h.Container != owner {
			fleet = append(fleet, c)
		}
	}
	if len(set) > api.ExclusiveRoom(n.cores, cpuset.Of(fleet...)) {
		return errdefs.ErrConflict.WithMessage(fmt.Sprintf("node %s must keep %d of its %d cores shared", n.Swarm.Hostname, api.MinSharedCores, len(n.cores)))
	}
	return nil
}

// claim books exactly want for owner (ledger.Book.Claim).
func (n *Node) claim(want cpuset.Set, owner string) error {
	for _, c := range want {
		if !n.cores.Contains(c) {
			return errdefs.ErrConflict.WithMessage(fmt.Sprintf("core %d does not exist on node %s (cores %s)", c, n.Swarm.Hostname, n.cores))
		}
		if h, taken := n.held[c]; taken && h.Container != owner {
			who := h.Container
			if !h.Fleet {
				who += " (outside the fleet)"
			}
			return errdefs.ErrConflict.WithMessage(fmt.Sprintf("core %d of node %s is held by %s", c, n.Swarm.Hostname, who))
		}
	}
	if err := n.keepsShared(want, owner); err != nil {
		return err
	}
	n.hold(want, owner)
	return nil
}

// hold gives owner exactly set (none: it holds nothing).
func (n *Node) hold(set cpuset.Set, owner string) {
	for c, h := range n.held {
		if h.Container == owner {
			delete(n.held, c)
		}
	}
	for _, c := range set {
		n.held[c] = api.Hold{Core: c, Container: owner, Fleet: true}
	}
}

// portsFree refuses host ports another container of the node publishes.
func (n *Node) portsFree(want []api.HostPort) error {
	var why []string
	for _, w := range want {
		for _, p := range n.ports {
			if p.Port == w.Port && p.Protocol == w.Protocol {
				why = append(why, fmt.Sprintf("host port %s is taken by %s", p, p.Container))
			}
		}
	}
	if len(why) > 0 {
		sort.Strings(why)
		return errdefs.ErrConflict.WithMessage(fmt.Sprintf("node %s: %s", n.Swarm.Hostname, strings.Join(why, ", ")))
	}
	return nil
}

func protocol(p string) string {
	if p == "" {
		return "tcp"
	}
	return strings.ToLower(p)
}
