package leader

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/agentclient"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

func (f *fakeSwarm) NodeRemove(_ context.Context, id string, _ client.NodeRemoveOptions) (client.NodeRemoveResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, n := range f.nodes {
		if n.ID == id {
			f.nodes = slices.Delete(f.nodes, i, i+1)
			return client.NodeRemoveResult{}, nil
		}
	}
	return client.NodeRemoveResult{}, errdefs.ErrNotFound
}

func (f *fakeSwarm) NodeUpdate(_ context.Context, id string, o client.NodeUpdateOptions) (client.NodeUpdateResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, n := range f.nodes {
		if n.ID == id {
			f.nodes[i].Spec = o.Spec
			return client.NodeUpdateResult{}, nil
		}
	}
	return client.NodeUpdateResult{}, errdefs.ErrNotFound
}

func (f *fakeSwarm) SwarmInspect(context.Context, client.SwarmInspectOptions) (client.SwarmInspectResult, error) {
	return client.SwarmInspectResult{Swarm: swarm.Swarm{JoinTokens: swarm.JoinTokens{Worker: "token"}}}, nil
}

func (f *fakeSwarm) node(host string) (swarm.Node, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.nodes {
		if n.Description.Hostname == host {
			return n, true
		}
	}
	return swarm.Node{}, false
}

func (a *fakeAgent) Rejoin(context.Context, api.RejoinRequest) (api.RejoinResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rejoins++
	id := "id-" + a.node + "-again"
	a.swarm.mu.Lock()
	defer a.swarm.mu.Unlock()
	a.swarm.nodes = append(a.swarm.nodes, swarm.Node{ID: id, Description: swarm.NodeDescription{Hostname: a.node},
		Status: swarm.NodeStatus{State: swarm.NodeStateReady, Addr: "10.0.0.9"},
		Spec:   swarm.NodeSpec{Role: swarm.NodeRoleWorker, Availability: swarm.NodeAvailabilityActive}})
	return api.RejoinResult{NodeID: id}, nil
}

func (a *fakeAgent) StandbyAssign(_ context.Context, req api.StandbyAssign) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, c := range a.containers {
		if c.Name == req.Container && c.Checkpoint != nil {
			cp := *c.Checkpoint
			cp.Standby = req.To
			a.containers[i].Checkpoint = &cp
			return nil
		}
	}
	return errdefs.ErrNotFound
}

func (a *fakeAgent) StandbyExpect(_ context.Context, req api.StandbyExpect) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expects = append(a.expects, req)
	return nil
}

func (a *fakeAgent) StandbyDrop(_ context.Context, req api.StandbyDrop) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.standbys = slices.DeleteFunc(a.standbys, func(c api.StandbyCopy) bool { return c.Container == req.Container })
	return nil
}

func (a *fakeAgent) StandbyRestore(_ context.Context, req api.StandbyRestoreRequest) (api.FleetContainer, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failRestore != nil {
		return api.FleetContainer{}, a.failRestore
	}
	for i, sc := range a.standbys {
		if sc.Container == req.Container {
			a.standbys = slices.Delete(a.standbys, i, i+1)
			c := api.FleetContainer{Name: req.Container, Service: "web", Node: a.node, State: "running"}
			a.containers = append(a.containers, c)
			if a.lostAnswer {
				return api.FleetContainer{}, context.DeadlineExceeded
			}
			return c, nil
		}
	}
	return api.FleetContainer{}, errdefs.ErrNotFound
}

// warmFleet is newFleet with h2 and h3 workers and web.2 (on h3)
// checkpointed every 30 s.
func warmFleet(t *testing.T) *fleetFixture {
	fx := newFleet(t, "1ms")
	for i := range fx.sw.nodes {
		fx.sw.nodes[i].Spec.Role = swarm.NodeRoleWorker
	}
	fx.sw.nodes[0].Spec.Role = swarm.NodeRoleManager
	for _, a := range fx.agents {
		a.swarm = fx.sw
	}
	fx.agents["h3"].containers[0].Checkpoint = &api.CheckpointStatus{Every: "30s"}
	return fx
}

// TestWarmRelocationFromTheStandby: the leader chooses web.2's standby
// ahead of time (h1, where its core is free); when h3 dies it is removed
// from the swarm and web.2 restored on h1 from that checkpoint; when h3 is
// back it removes its copy, joins the swarm again and gets its labels.
func TestWarmRelocationFromTheStandby(t *testing.T) {
	ctx := context.Background()
	fx := warmFleet(t)
	l := fx.leader()
	assert.NilError(t, l.Round(ctx))
	assert.Check(t, is.DeepEqual(fx.agents["h1"].expects, []api.StandbyExpect{{Container: "web.2", From: "h3", Network: "fleet"}}),
		"h1 has both its cores free: it is web.2's standby")
	assert.Check(t, is.Equal(fx.agents["h3"].containers[0].Checkpoint.Standby, "h1"))
	assert.NilError(t, l.Round(ctx))
	assert.Check(t, is.Len(fx.agents["h1"].expects, 1), "chosen once")

	// A checkpoint reached h1; then h3 dies.
	fx.agents["h1"].standbys = []api.StandbyCopy{{Container: "web.2", From: "h3", At: time.Now(), Seq: 1}}
	fx.kill("h3")
	time.Sleep(5 * time.Millisecond)
	assert.NilError(t, l.Round(ctx))
	_, inSwarm := fx.sw.node("h3")
	assert.Check(t, !inSwarm, "a dead worker with warm containers is removed from the swarm: its addresses are free")
	assert.Check(t, is.Len(fx.where("web.2"), 0), "restored only once the swarm let the node go")
	assert.NilError(t, l.Round(ctx))
	assert.Check(t, is.DeepEqual(fx.where("web.2"), []string{"h1"}))
	st, err := swarmstore.ReadStats(ctx, fx.sw)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(st, swarmstore.Stats{Failures: 1, RelocationsWarm: 1}))
	downs, err := swarmstore.DownNodes(ctx, fx.sw)
	assert.NilError(t, err)
	assert.Assert(t, is.Len(downs, 1))
	assert.Check(t, downs[0].Removed)
	assert.Check(t, is.Equal(downs[0].AgentPort, 7477))

	// h3 is back: reached at its recorded address, fenced, joined again.
	fx.revive("h3")
	assert.NilError(t, l.Round(ctx))
	assert.Check(t, is.DeepEqual(fx.agents["h3"].fenced, []string{"web.2"}))
	assert.Check(t, is.Equal(fx.agents["h3"].rejoins, 1))
	assert.NilError(t, l.Round(ctx))
	n, ok := fx.sw.node("h3")
	assert.Assert(t, ok)
	assert.Check(t, is.Equal(n.ID, "id-h3-again"))
	assert.Check(t, is.Equal(n.Spec.Labels[labels.AgentPort], "7477"), "the fleet's labels are back on the new node")
	downs, err = swarmstore.DownNodes(ctx, fx.sw)
	assert.NilError(t, err)
	assert.Check(t, is.Len(downs, 0))
	assert.Check(t, is.Equal(fx.agents["h3"].rejoins, 1), "joined once")
	assert.Check(t, is.DeepEqual(fx.where("web.2"), []string{"h1"}))
}

// TestWarmRestoreThatFailsGoesCold: a standby whose restore fails leaves
// no record, and the replica is made afresh where it fits.
func TestWarmRestoreThatFailsGoesCold(t *testing.T) {
	ctx := context.Background()
	fx := warmFleet(t)
	l := fx.leader()
	assert.NilError(t, l.Round(ctx))
	fx.agents["h1"].standbys = []api.StandbyCopy{{Container: "web.2", From: "h3", At: time.Now(), Seq: 1}}
	fx.agents["h1"].failRestore = &agentclient.Error{Node: "h1", Status: 500, Message: "restore: CRIU failed"}
	fx.kill("h3")
	time.Sleep(5 * time.Millisecond)
	assert.NilError(t, l.Round(ctx)) // h3 removed
	assert.NilError(t, l.Round(ctx))
	assert.Check(t, is.Len(fx.where("web.2"), 0), "not made cold in the round its restore failed")
	assert.NilError(t, l.Round(ctx))
	st, err := swarmstore.ReadStats(ctx, fx.sw)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.RelocationsWarm, 0))
	assert.Check(t, is.DeepEqual(fx.where("web.2"), []string{"h1"}), "made afresh where the scheduler puts it")
	assert.Check(t, is.Equal(st.RelocationsCold, 1))
	// The copy serves nothing now: web.2 runs where it is.
	assert.NilError(t, l.Round(ctx))
	assert.Check(t, is.Len(fx.agents["h1"].standbys, 0))
}

// TestWarmRestoreWithoutAnswerIsNotMadeCold: a restore whose answer is
// lost (a timeout) may have happened: its record stays, nothing is made
// cold, and the next round finds the copy running.
func TestWarmRestoreWithoutAnswerIsNotMadeCold(t *testing.T) {
	ctx := context.Background()
	fx := warmFleet(t)
	l := fx.leader()
	assert.NilError(t, l.Round(ctx))
	fx.agents["h1"].standbys = []api.StandbyCopy{{Container: "web.2", From: "h3", At: time.Now(), Seq: 1}}
	fx.agents["h1"].lostAnswer = true
	fx.kill("h3")
	time.Sleep(5 * time.Millisecond)
	assert.NilError(t, l.Round(ctx))
	assert.NilError(t, l.Round(ctx)) // restored, answer lost
	fx.agents["h1"].lostAnswer = false
	assert.NilError(t, l.Round(ctx))
	assert.NilError(t, l.Round(ctx))
	assert.Check(t, is.DeepEqual(fx.where("web.2"), []string{"h1"}), "one copy, the restored one")
	st, err := swarmstore.ReadStats(ctx, fx.sw)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.RelocationsCold, 0))
	rels, err := swarmstore.Relocations(ctx, fx.sw, "h3")
	assert.NilError(t, err)
	assert.Check(t, is.Len(rels, 1), "its record stays, so h3 is fenced when it is back")
}

// TestStaleStandbyCopiesAreDropped: a copy of a container that runs on the
// very node that holds it, or of a replica no longer claimed, serves
// nothing; a copy of a container whose node is dead is kept.
func TestStaleStandbyCopiesAreDropped(t *testing.T) {
	ctx := context.Background()
	fx := warmFleet(t)
	fx.agents["h2"].standbys = []api.StandbyCopy{{Container: "web.1", From: "h1", At: time.Now()}, {Container: "gone.1", From: "h3", At: time.Now()}}
	fx.agents["h1"].standbys = []api.StandbyCopy{{Container: "web.2", From: "h3", At: time.Now()}}
	fx.agents["h3"].down = true // its agent is away: web.2 is on no live node
	l := fx.leader()
	assert.NilError(t, l.Round(ctx))
	assert.Check(t, is.Len(fx.agents["h2"].standbys, 0))
	assert.Check(t, is.Len(fx.agents["h1"].standbys, 1), "all that may be left of web.2")
}

// TestStandbyChosenAgainKeepsItsCopy: a container whose node forgot its
// standby (the standby's agent restarted and refused a checkpoint) gets
// the same standby again, which keeps the copy it holds.
func TestStandbyChosenAgainKeepsItsCopy(t *testing.T) {
	ctx := context.Background()
	fx := warmFleet(t)
	fx.agents["h1"].standbys = []api.StandbyCopy{{Container: "web.2", From: "h3", At: time.Now()}}
	l := fx.leader()
	assert.NilError(t, l.Round(ctx))
	assert.Check(t, is.Equal(fx.agents["h3"].containers[0].Checkpoint.Standby, "h1"))
	assert.Check(t, is.Len(fx.agents["h1"].standbys, 1), "the copy stays: h1 is its standby again")
}
