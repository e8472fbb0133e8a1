package leader

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// fakeSwarm is a manager's engine as far as the leader uses it: the nodes
// and the raft store's configs, shared by every leader of a test.
type fakeSwarm struct {
	client.APIClient
	mu      sync.Mutex
	nodes   []swarm.Node
	configs map[string]swarm.Config
	seq     int
}

func newFakeSwarm(hosts ...string) *fakeSwarm {
	f := &fakeSwarm{configs: map[string]swarm.Config{}}
	for i, h := range hosts {
		n := swarm.Node{ID: "id-" + h, Description: swarm.NodeDescription{Hostname: h},
			Status: swarm.NodeStatus{State: swarm.NodeStateReady, Addr: "10.0.0." + strconv.Itoa(i+1)},
			Spec:   swarm.NodeSpec{Availability: swarm.NodeAvailabilityActive, Annotations: swarm.Annotations{Labels: map[string]string{labels.AgentPort: "7477"}}}}
		if i == 0 {
			n.ManagerStatus = &swarm.ManagerStatus{Leader: true}
		}
		f.nodes = append(f.nodes, n)
	}
	return f
}

func (f *fakeSwarm) setState(host string, s swarm.NodeState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.nodes {
		if f.nodes[i].Description.Hostname == host {
			f.nodes[i].Status.State = s
		}
	}
}

func (f *fakeSwarm) Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error) {
	return client.SystemInfoResult{Info: system.Info{Swarm: swarm.Info{NodeID: f.nodes[0].ID, ControlAvailable: true}}}, nil
}

func (f *fakeSwarm) NodeInspect(_ context.Context, id string, _ client.NodeInspectOptions) (client.NodeInspectResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.nodes {
		if n.ID == id {
			return client.NodeInspectResult{Node: n}, nil
		}
	}
	return client.NodeInspectResult{}, errdefs.ErrNotFound
}

func (f *fakeSwarm) NodeList(context.Context, client.NodeListOptions) (client.NodeListResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return client.NodeListResult{Items: append([]swarm.Node(nil), f.nodes...)}, nil
}

func (f *fakeSwarm) NetworkList(context.Context, client.NetworkListOptions) (client.NetworkListResult, error) {
	return client.NetworkListResult{Items: []network.Summary{{Network: network.Network{Name: "fleet", ID: "net"}}}}, nil
}

func (f *fakeSwarm) ConfigCreate(_ context.Context, o client.ConfigCreateOptions) (client.ConfigCreateResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.configs[o.Spec.Name]; ok {
		return client.ConfigCreateResult{}, errdefs.ErrConflict
	}
	f.seq++
	f.configs[o.Spec.Name] = swarm.Config{ID: fmt.Sprint("cfg", f.seq), Spec: o.Spec, Meta: swarm.Meta{CreatedAt: time.Now()}}
	return client.ConfigCreateResult{}, nil
}

func (f *fakeSwarm) find(nameOrID string) (swarm.Config, bool) {
	if c, ok := f.configs[nameOrID]; ok {
		return c, true
	}
	for _, c := range f.configs {
		if c.ID == nameOrID {
			return c, true
		}
	}
	return swarm.Config{}, false
}

func (f *fakeSwarm) ConfigInspect(_ context.Context, id string, _ client.ConfigInspectOptions) (client.ConfigInspectResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.find(id)
	if !ok {
		return client.ConfigInspectResult{}, errdefs.ErrNotFound
	}
	return client.ConfigInspectResult{Config: c}, nil
}

func (f *fakeSwarm) ConfigList(_ context.Context, o client.ConfigListOptions) (client.ConfigListResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []swarm.Config
	for _, c := range f.configs {
		keep := true
		for want := range o.Filters["label"] {
			k, v, hasValue := strings.Cut(want, "=")
			got, ok := c.Spec.Labels[k]
			keep = keep && ok && (!hasValue || got == v)
		}
		if keep {
			out = append(out, c)
		}
	}
	return client.ConfigListResult{Items: out}, nil
}

func (f *fakeSwarm) ConfigUpdate(_ context.Context, id string, o client.ConfigUpdateOptions) (client.ConfigUpdateResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.find(id)
	if !ok {
		return client.ConfigUpdateResult{}, errdefs.ErrNotFound
	}
	c.Spec.Labels = o.Spec.Labels
	f.configs[c.Spec.Name] = c
	return client.ConfigUpdateResult{}, nil
}

func (f *fakeSwarm) ConfigRemove(_ context.Context, id string, _ client.ConfigRemoveOptions) (client.ConfigRemoveResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.find(id)
	if !ok {
		return client.ConfigRemoveResult{}, errdefs.ErrNotFound
	}
	delete(f.configs, c.Spec.Name)
	return client.ConfigRemoveResult{}, nil
}

// fakeAgent is one node's agent: three cores (one stays shared), its containers.
type fakeAgent struct {
	mu         sync.Mutex
	node       string
	down       bool
	failCreate error
	containers []api.FleetContainer
	fenced     []string
	// Warm relocation: the checkpoints it holds for others, what it was
	// told to expect, and where it sends its own.
	standbys []api.StandbyCopy
	expects  []api.StandbyExpect
	// swarm and rejoins: a Rejoin adds the node to swarm again.
	swarm       *fakeSwarm
	rejoins     int
	failRestore error
	lostAnswer  bool
	// The automatic rebalance's: its peers (to migrate to), the
	// migrations it was told to expect, the containers checked, those it
	// finds cannot be checkpointed, and a failure of every migration.
	peers       map[string]*fakeAgent
	expected    map[string]api.Expectation
	checks      []string
	uncheckable map[string]string
	failMigrate error
	block       chan struct{} // each migration waits for it to close
	blocked     atomic.Int32  // migrations that waited
}

func (a *fakeAgent) Ledger(context.Context) (api.Ledger, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		return api.Ledger{}, errors.New("connection refused")
	}
	l := api.Ledger{Node: a.node, Cores: []int{0, 1, 2}, MemTotal: 1 << 30, Containers: append([]api.FleetContainer(nil), a.containers...),
		Standbys: append([]api.StandbyCopy(nil), a.standbys...)}
	for i := range a.containers {
		l.Held = append(l.Held, api.Hold{Core: i, Container: a.containers[i].Name, Fleet: true})
	}
	return l, nil
}

func (a *fakeAgent) Create(_ context.Context, req api.CreateRequest) (api.FleetContainer, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		return api.FleetContainer{}, errors.New("connection refused")
	}
	if a.failCreate != nil {
		return api.FleetContainer{}, a.failCreate
	}
	c := api.FleetContainer{Name: req.Name, Service: req.Service.Name, Replica: req.Replica, Node: a.node}
	a.containers = append(a.containers, c)
	return c, nil
}

func (a *fakeAgent) Fence(_ context.Context, req api.FenceRequest) (api.FenceResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var res api.FenceResult
	for _, name := range req.Containers {
		for i, c := range a.containers {
			if c.Name == name {
				a.containers = append(a.containers[:i], a.containers[i+1:]...)
				res.Removed = append(res.Removed, name)
				a.fenced = append(a.fenced, name)
				break
			}
		}
	}
	return res, nil
}

// staleAgent answers with a ledger read earlier.
type staleAgent struct {
	*fakeAgent
	ledger api.Ledger
}

func (a staleAgent) Ledger(context.Context) (api.Ledger, error) {
	if a.ledger.Node == "" {
		return api.Ledger{}, errors.New("connection refused")
	}
	return a.ledger, nil
}

type fleetFixture struct {
	sw     *fakeSwarm
	agents map[string]*fakeAgent
}

// newFleet is h1 (the leader), h2 and h3, with web.1 on h2 and web.2 on h3,
// and a grace period of grace.
func newFleet(t *testing.T, grace string) *fleetFixture {
	t.Helper()
	fx := &fleetFixture{sw: newFakeSwarm("h1", "h2", "h3"), agents: map[string]*fakeAgent{}}
	for _, h := range []string{"h1", "h2", "h3"} {
		fx.agents[h] = &fakeAgent{node: h}
	}
	ctx := context.Background()
	_, err := fx.sw.ConfigCreate(ctx, client.ConfigCreateOptions{Spec: swarm.ConfigSpec{
		Annotations: swarm.Annotations{Name: labels.CAConfigName, Labels: map[string]string{labels.FailoverAfter: grace}}}})
	assert.NilError(t, err)
	svc := spec.Service{Name: "web", Image: "img", Replicas: 2, Cores: 1}
	assert.NilError(t, swarmstore.SaveService(ctx, fx.sw, svc))
	for i, h := range []string{"h2", "h3"} {
		name := "web." + strconv.Itoa(i+1)
		ok, err := swarmstore.ClaimReplica(ctx, fx.sw, "web", i+1, h, func(string) bool { return false })
		assert.Assert(t, ok && err == nil)
		fx.agents[h].containers = []api.FleetContainer{{Name: name, Service: "web", Replica: i + 1, Node: h}}
	}
	return fx
}

func (fx *fleetFixture) leader() *Leader {
	return &Leader{Engine: fx.sw, Agents: func(n swarmstore.Node) (Agent, error) { return fx.agents[n.Hostname], nil }}
}

// kill takes a node away: the swarm loses it and its agent is silent.
func (fx *fleetFixture) kill(h string) {
	fx.sw.setState(h, swarm.NodeStateDown)
	fx.agents[h].mu.Lock()
	fx.agents[h].down = true
	fx.agents[h].mu.Unlock()
}

func (fx *fleetFixture) revive(h string) {
	fx.sw.setState(h, swarm.NodeStateReady)
	fx.agents[h].mu.Lock()
	fx.agents[h].down = false
	fx.agents[h].mu.Unlock()
}

func (fx *fleetFixture) where(name string) []string {
	var out []string
	for h, a := range fx.agents {
		if a.down {
			continue
		}
		for _, c := range a.containers {
			if c.Name == name {
				out = append(out, h)
			}
		}
	}
	return out
}

func TestDeadNodeIsRelocatedOnceAfterGraceAndFencedOnReturn(t *testing.T) {
	ctx := context.Background()
	fx := newFleet(t, "150ms")
	l := fx.leader()
	assert.NilError(t, l.Round(ctx)) // h3 seen alive
	fx.kill("h3")
	assert.NilError(t, l.Round(ctx))
	assert.Check(t, is.Len(fx.where("web.2"), 0), "nothing before the grace period ends")
	time.Sleep(200 * time.Millisecond)
	// A second leader (a change of leader) at the same time, which read
	// the ledgers before the first made web.2: between them, web.2 is made
	// once.
	other := fx.leader()
	before := map[string]api.Ledger{}
	for h, a := range fx.agents {
		before[h], _ = a.Ledger(ctx)
	}
	other.Agents = func(n swarmstore.Node) (Agent, error) {
		return staleAgent{fx.agents[n.Hostname], before[n.Hostname]}, nil
	}
	other.leading, other.lastUp, other.ledgers = true, map[string]time.Time{"h3": time.Now().Add(-time.Second)}, map[string]api.Ledger{}
	assert.NilError(t, l.Round(ctx))
	assert.NilError(t, other.Round(ctx))
	assert.Check(t, is.DeepEqual(fx.where("web.2"), []string{"h1"}), "placed where a core is free (h2's are web.1's and h1 has both)")
	st, err := swarmstore.ReadStats(ctx, fx.sw)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(st, swarmstore.Stats{Failures: 1, RelocationsCold: 1}))
	downs, err := swarmstore.DownNodes(ctx, fx.sw)
	assert.NilError(t, err)
	assert.Assert(t, is.Len(downs, 1))
	assert.Check(t, downs[0].Known)

	fx.revive("h3")
	assert.NilError(t, l.Round(ctx))
	assert.Check(t, is.DeepEqual(fx.agents["h3"].fenced, []string{"web.2"}))
	assert.Check(t, is.DeepEqual(fx.where("web.2"), []string{"h1"}))
	downs, err = swarmstore.DownNodes(ctx, fx.sw)
	assert.NilError(t, err)
	assert.Check(t, is.Len(downs, 0))
	rels, err := swarmstore.Relocations(ctx, fx.sw, "h3")
	assert.NilError(t, err)
	assert.Check(t, is.Len(rels, 0))
}

func TestRelocationThatFailsIsTriedAgain(t *testing.T) {
	ctx := context.Background()
	fx := newFleet(t, "1ms")
	l := fx.leader()
	assert.NilError(t, l.Round(ctx))
	fx.kill("h3")
	fx.agents["h1"].failCreate = errdefs.ErrConflict
	fx.agents["h2"].failCreate = errdefs.ErrConflict
	time.Sleep(5 * time.Millisecond)
	assert.NilError(t, l.Round(ctx))
	assert.Check(t, is.Len(fx.where("web.2"), 0))
	rels, err := swarmstore.Relocations(ctx, fx.sw, "h3")
	assert.NilError(t, err)
	assert.Check(t, is.Len(rels, 0), "a relocation not made leaves no record")
	fx.agents["h1"].failCreate, fx.agents["h2"].failCreate = nil, nil
	assert.NilError(t, l.Round(ctx))
	assert.Check(t, is.Len(fx.where("web.2"), 1))
}

func TestEngineHeardByTheSwarmKeepsItsContainers(t *testing.T) {
	ctx := context.Background()
	fx := newFleet(t, "1ms")
	l := fx.leader()
	assert.NilError(t, l.Round(ctx))
	// Only the agent is away: the engine runs web.2.
	fx.agents["h3"].down = true
	time.Sleep(5 * time.Millisecond)
	assert.NilError(t, l.Round(ctx))
	assert.Check(t, is.Len(fx.where("web.2"), 0))
	downs, err := swarmstore.DownNodes(ctx, fx.sw)
	assert.NilError(t, err)
	assert.Check(t, is.Len(downs, 0))
}

func TestFailoverOff(t *testing.T) {
	ctx := context.Background()
	fx := newFleet(t, "0s")
	l := fx.leader()
	assert.NilError(t, l.Round(ctx))
	fx.kill("h3")
	time.Sleep(5 * time.Millisecond)
	assert.NilError(t, l.Round(ctx))
	downs, err := swarmstore.DownNodes(ctx, fx.sw)
	assert.NilError(t, err)
	assert.Check(t, is.Len(downs, 0))
}

// TestLeaderThatNeverHeardTheNodeInfersItsReplicas: a leader that took
// over after h3 died relocates what is claimed and runs nowhere, under its
// replica number.
func TestLeaderThatNeverHeardTheNodeInfersItsReplicas(t *testing.T) {
	ctx := context.Background()
	fx := newFleet(t, "1ms")
	fx.kill("h3")
	l := fx.leader()
	assert.NilError(t, l.Round(ctx))
	time.Sleep(5 * time.Millisecond)
	assert.NilError(t, l.Round(ctx))
	downs, err := swarmstore.DownNodes(ctx, fx.sw)
	assert.NilError(t, err)
	assert.Assert(t, is.Len(downs, 1))
	assert.Check(t, !downs[0].Known)
	assert.Assert(t, is.DeepEqual(fx.where("web.2"), []string{"h1"}))
	assert.Check(t, is.Equal(fx.agents["h1"].containers[0].Replica, 2))
	assert.Check(t, is.Len(fx.where("web.1"), 1), "web.1 runs on h2 and stays there")
}

// TestReplicaMadeJustBeforeTheDeathIsRelocated: a replica made on h3 after
// the leader's last look at it, just before h3 died, is known by its claim.
func TestReplicaMadeJustBeforeTheDeathIsRelocated(t *testing.T) {
	ctx := context.Background()
	fx := newFleet(t, "1ms")
	l := fx.leader()
	assert.NilError(t, l.Round(ctx))
	ok, err := swarmstore.ClaimReplica(ctx, fx.sw, "web", 3, "h3", func(string) bool { return false })
	assert.Assert(t, ok && err == nil)
	fx.agents["h3"].containers = append(fx.agents["h3"].containers, api.FleetContainer{Name: "web.3", Service: "web", Replica: 3, Node: "h3"})
	fx.kill("h3")
	time.Sleep(5 * time.Millisecond)
	assert.NilError(t, l.Round(ctx))
	downs, err := swarmstore.DownNodes(ctx, fx.sw)
	assert.NilError(t, err)
	assert.Assert(t, is.Len(downs, 1))
	assert.Check(t, downs[0].Known)
	assert.Check(t, is.Len(fx.where("web.2"), 1))
	assert.Check(t, is.Len(fx.where("web.3"), 1), "made after the leader's last look, relocated all the same")
	assert.Check(t, is.Len(fx.where("web.1"), 1))
}
