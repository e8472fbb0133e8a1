package deploy

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// toImage is an update's change: another image.
func toImage(image string) func(*spec.Service) error {
	return func(s *spec.Service) error { s.Image = image; return nil }
}

// revisions maps each container to its revision and image.
func (f *fakeFleet) revisions(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, c := range f.containers(t) {
		out[name] = c.Image + "@" + string(rune('0'+c.Revision)) + " " + c.State
	}
	return out
}

func TestUpdateReplacesEveryReplica(t *testing.T) {
	for _, order := range []string{OrderStopFirst, OrderStartFirst} {
		t.Run(order, func(t *testing.T) {
			f := newFakeFleet(t, 3, 4)
			f.create(t, service("web", 3, 1))
			nodes := map[string]string{}
			for name, c := range f.containers(t) {
				nodes[name] = c.Node
			}

			res, err := f.d.Update(context.Background(), "web", toImage("app:2"), UpdateOptions{Order: order})
			assert.NilError(t, err)
			assert.Check(t, is.Equal(res.State, swarmstore.UpdateCompleted))
			assert.Check(t, is.Len(res.Replaced, 3))
			assert.Check(t, is.DeepEqual(f.revisions(t), map[string]string{
				"web.1": "app:2@1 running", "web.2": "app:2@1 running", "web.3": "app:2@1 running"}))
			for name, c := range f.containers(t) {
				assert.Check(t, is.Equal(c.Node, nodes[name]), "%s stays on its node", name)
			}
			assert.Check(t, is.Equal(f.heldCores(t), 3), "no successor left holding cores")
		})
	}
}

func TestUpdateRollsBackWhenAReplacementDoesNotComeUp(t *testing.T) {
	f := newFakeFleet(t, 3, 4)
	f.create(t, service("web", 3, 1))
	// The new image's second replica exits at once.
	for _, n := range f.Nodes {
		n.Boot = func(req api.CreateRequest, c *api.FleetContainer) {
			if req.Service.Image == "app:2" && req.Replica == 2 {
				code := 1
				c.State, c.Health, c.ExitCode = "exited", "", &code
			}
		}
	}

	res, err := f.d.Update(context.Background(), "web", toImage("app:2"), UpdateOptions{})
	assert.Check(t, errdefs.IsFailedPrecondition(err))
	assert.Check(t, is.ErrorContains(err, "rolled back, every replica is on revision 0 again"))
	assert.Check(t, is.ErrorContains(err, "web.2 on"))
	assert.Check(t, is.Equal(res.State, swarmstore.UpdateRolledBack))
	assert.Check(t, is.DeepEqual(f.revisions(t), map[string]string{
		"web.1": "app:1@0 running", "web.2": "app:1@0 running", "web.3": "app:1@0 running"}))

	st, err := swarmstore.LoadServiceState(context.Background(), f.swarm, "web")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Service.Image, "app:1"), "the definition is the one before")
	assert.Check(t, is.Equal(st.Update.State, swarmstore.UpdateRolledBack))
	assert.Check(t, !st.Update.Running())
	assert.Check(t, is.DeepEqual(f.claims(t), []string{"web.1", "web.2", "web.3"}))
}

func TestUpdatePausedByAFailureWithPauseIsResumed(t *testing.T) {
	f := newFakeFleet(t, 3, 4)
	f.create(t, service("web", 3, 1))
	var creates atomic.Int32
	for _, n := range f.Nodes {
		n.OnCall("Create", 0, func() error {
			if creates.Add(1) == 2 {
				return errdefs.ErrUnavailable.WithMessage("the engine restarts")
			}
			return nil
		})
	}

	res, err := f.d.Update(context.Background(), "web", toImage("app:2"), UpdateOptions{FailureAction: ActionPause})
	assert.Check(t, is.ErrorContains(err, "the update of web paused"))
	assert.Check(t, is.Equal(res.State, swarmstore.UpdatePaused))
	st, err := swarmstore.LoadServiceState(context.Background(), f.swarm, "web")
	assert.NilError(t, err)
	assert.Check(t, st.Update.Running())
	assert.Check(t, is.Equal(st.Service.Image, "app:2"))
	// web.2 was stopped, and its successor never made: its name is still
	// claimed, for the resume to make it again.
	assert.Check(t, is.Len(f.containers(t), 2))
	assert.Check(t, is.DeepEqual(f.claims(t), []string{"web.1", "web.2", "web.3"}))

	// Scale waits for it to end.
	_, err = f.d.Scale(context.Background(), []ScaleTarget{{Service: "web", Replicas: 4}})
	assert.Check(t, errdefs.IsConflict(err))

	res, err = f.d.Update(context.Background(), "web", nil, UpdateOptions{})
	assert.NilError(t, err)
	assert.Check(t, is.Equal(res.State, swarmstore.UpdateCompleted))
	assert.Check(t, is.DeepEqual(f.revisions(t), map[string]string{
		"web.1": "app:2@1 running", "web.2": "app:2@1 running", "web.3": "app:2@1 running"}))
}

func TestUpdateInterruptedPausesAndResumes(t *testing.T) {
	f := newFakeFleet(t, 3, 4)
	f.create(t, service("web", 3, 1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var creates atomic.Int32
	for _, n := range f.Nodes {
		n.OnCall("Create", 0, func() error {
			if creates.Add(1) == 2 {
				cancel() // the user's ^C, while the second replacement is made
				return context.Canceled
			}
			return nil
		})
	}

	res, err := f.d.Update(ctx, "web", toImage("app:2"), UpdateOptions{})
	assert.Check(t, is.ErrorContains(err, "the update of web paused"))
	assert.Check(t, is.Equal(res.State, swarmstore.UpdatePaused), "interrupted, it is not rolled back")
	assert.Check(t, is.Len(f.containers(t), 2))

	res, err = f.d.Update(context.Background(), "web", nil, UpdateOptions{})
	assert.NilError(t, err)
	assert.Check(t, is.Equal(res.State, swarmstore.UpdateCompleted))
	assert.Check(t, is.DeepEqual(f.revisions(t), map[string]string{
		"web.1": "app:2@1 running", "web.2": "app:2@1 running", "web.3": "app:2@1 running"}))
}

func TestUpdateResumesWhatAKilledCLILeft(t *testing.T) {
	f := newFakeFleet(t, 3, 4)
	f.create(t, service("web", 3, 1))
	ctx := context.Background()
	// A CLI that died mid-update left its record running, web.1 on the
	// new revision and web.2 removed, its successor not made yet.
	cur, err := swarmstore.LoadService(ctx, f.swarm, "web")
	assert.NilError(t, err)
	next := cur
	next.Image, next.Revision = "app:2", 1
	assert.NilError(t, swarmstore.StartUpdate(ctx, f.swarm, &cur, next, swarmstore.Update{State: swarmstore.UpdateRolling, From: 0, To: 1,
		UpdateConfig: spec.UpdateConfig{Parallelism: 1, Monitor: spec.Duration(time.Millisecond)}, Restore: nil}))
	n1, n2 := f.nodeOf(t, "web.1"), f.nodeOf(t, "web.2")
	assert.NilError(t, n1.Retire(ctx, "web.1"))
	_, err = n1.Create(ctx, api.CreateRequest{Name: "web.1", Replica: 1, Network: "fleet", Service: next})
	assert.NilError(t, err)
	assert.NilError(t, n2.Retire(ctx, "web.2"))

	res, err := f.d.Update(ctx, "web", nil, UpdateOptions{})
	assert.NilError(t, err)
	assert.Check(t, is.Equal(res.State, swarmstore.UpdateCompleted))
	assert.Check(t, is.Len(res.Replaced, 2), "web.2 made again, web.3 replaced; web.1 left alone")
	assert.Check(t, is.DeepEqual(f.revisions(t), map[string]string{
		"web.1": "app:2@1 running", "web.2": "app:2@1 running", "web.3": "app:2@1 running"}))
	assert.Check(t, is.Equal(f.nodeOf(t, "web.2"), n2), "made again on the node it was claimed for")
}

func TestResizeRestoresWhatItChangedWhenAReplicaIsRefused(t *testing.T) {
	f := newFakeFleet(t, 3, 4)
	f.create(t, service("web", 3, 1))
	before, ledgers := f.containers(t), f.ledgers(t)
	// web.3 is the last one resized; its node refuses.
	n3 := f.nodeOf(t, "web.3")
	nth := 1
	for _, name := range []string{"web.1", "web.2"} {
		if f.nodeOf(t, name) == n3 {
			nth++
		}
	}
	n3.Fail("Resize", nth, errdefs.ErrConflict.WithMessage("web.3 cannot be resized on its node now"))

	cores, memory := 2, int64(128*mib)
	_, err := f.d.Resize(context.Background(), "web", api.ResizeRequest{Cores: &cores, Memory: &memory})
	assert.Check(t, errdefs.IsConflict(err))
	assert.Check(t, is.ErrorContains(err, "web.3 on "+n3.Swarm.Hostname))
	assert.Check(t, is.DeepEqual(f.containers(t), before), "every replica back to its cores and memory")
	assert.Check(t, is.DeepEqual(f.ledgers(t), ledgers))
	s, err := swarmstore.LoadService(context.Background(), f.swarm, "web")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(s.Cores, 1), "the definition unchanged")

	// Without the refusal, every replica and the definition change.
	done, err := f.d.Resize(context.Background(), "web", api.ResizeRequest{Cores: &cores, Memory: &memory})
	assert.NilError(t, err)
	assert.Check(t, is.Len(done, 3))
	assert.Check(t, is.Equal(f.heldCores(t), 6))
	s, err = swarmstore.LoadService(context.Background(), f.swarm, "web")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(s.Cores, 2))
	assert.Check(t, is.Equal(s.Memory, memory))
}

// A rollback that fails pauses as a rollback: the next update command
// tries the rollback again, and never rolls the rollback back.
func TestFailedRollbackResumesAsARollback(t *testing.T) {
	f := newFakeFleet(t, 3, 4)
	f.create(t, service("web", 3, 1))
	for _, n := range f.Nodes {
		n.Boot = func(req api.CreateRequest, c *api.FleetContainer) {
			if req.Service.Image == "app:2" && req.Replica == 2 {
				code := 1
				c.State, c.Health, c.ExitCode = "exited", "", &code
			}
		}
	}
	var creates atomic.Int32
	for _, n := range f.Nodes {
		n.OnCall("Create", 0, func() error {
			if creates.Add(1) == 3 { // the rollback's first
				return errdefs.ErrUnavailable.WithMessage("the engine restarts")
			}
			return nil
		})
	}
	_, err := f.d.Update(context.Background(), "web", toImage("app:2"), UpdateOptions{})
	assert.Check(t, is.ErrorContains(err, "its rollback failed too"))
	st, err := swarmstore.LoadServiceState(context.Background(), f.swarm, "web")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Update.State, swarmstore.UpdatePaused))
	assert.Check(t, is.Equal(st.Update.PausedFrom, swarmstore.UpdateRollingBack))
	assert.Check(t, is.Equal(st.Service.Image, "app:1"))

	res, err := f.d.Update(context.Background(), "web", nil, UpdateOptions{})
	assert.NilError(t, err)
	assert.Check(t, is.Equal(res.State, swarmstore.UpdateRolledBack))
	assert.Check(t, is.DeepEqual(f.revisions(t), map[string]string{
		"web.1": "app:1@0 running", "web.2": "app:1@0 running", "web.3": "app:1@0 running"}))
}
