package deploy

import (
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

func TestUpdateOptionDefaults(t *testing.T) {
	var o UpdateOptions
	assert.NilError(t, o.defaults())
	assert.Check(t, is.Equal(o.Parallelism, 1))
	assert.Check(t, is.Equal(o.Monitor, DefaultMonitor))
	assert.Check(t, is.Equal(o.Order, OrderStopFirst))
	assert.Check(t, is.Equal(o.FailureAction, ActionRollback))

	for _, bad := range []UpdateOptions{{Order: "sideways"}, {FailureAction: "continue"}, {Parallelism: -1}} {
		assert.Check(t, bad.defaults() != nil, "%+v", bad)
	}
	start := UpdateOptions{Order: OrderStartFirst}
	assert.NilError(t, start.defaults())

	// update_config fills what was not given.
	o = UpdateOptions{Parallelism: 3}
	o.from(&spec.UpdateConfig{Parallelism: 2, Monitor: spec.Duration(time.Second), Order: OrderStartFirst, FailureAction: ActionPause})
	assert.Check(t, is.Equal(o.Parallelism, 3))
	assert.Check(t, is.Equal(o.Monitor, time.Second))
	assert.Check(t, is.Equal(o.Order, OrderStartFirst))
	assert.Check(t, is.Equal(o.FailureAction, ActionPause))
}

// start-first is refused, naming why, where a successor cannot run beside
// its replica.
func TestRoomForSuccessor(t *testing.T) {
	s := spec.Service{Name: "web", Image: "x", Ports: []spec.Port{{Host: 8080, Container: 80, Protocol: "tcp"}}}
	err := roomForSuccessor(nil, s)
	assert.Check(t, errdefs.IsFailedPrecondition(err))
	assert.Check(t, is.ErrorContains(err, "web publishes host port 8080/tcp, which each replica holds until it stops: use stop-first"))
	s.Ports = nil
	s.NetworkMode = spec.HostNetwork
	assert.Check(t, is.ErrorContains(roomForSuccessor(nil, s), "runs on its nodes' network"))
	s.NetworkMode = ""
	assert.Check(t, is.ErrorContains(roomForSuccessor(nil, s), "needs room for one more replica of web"))
}

func TestChangedBumpsTheRevision(t *testing.T) {
	cur := spec.Service{Name: "web", Image: "a", Replicas: 3, Revision: 2, Strategy: spec.Spread}
	st := swarmstore.ServiceState{Service: cur}
	next, err := changed(st, func(s *spec.Service) error { s.Image = "b"; return nil })
	assert.NilError(t, err)
	assert.Check(t, is.Equal(next.Revision, 3))
	assert.Check(t, is.Equal(next.Replicas, 3))
	assert.Check(t, is.Equal(cur.Image, "a"), "the current definition was changed")

	// After a rollback the previous definition may have the higher number:
	// a new revision is above both.
	prev := cur
	prev.Revision = 5
	st.Previous = &prev
	next, err = changed(st, func(s *spec.Service) error { s.Image = "c"; return nil })
	assert.NilError(t, err)
	assert.Check(t, is.Equal(next.Revision, 6))

	_, err = changed(st, func(s *spec.Service) error { s.Image = "a"; return nil })
	assert.Check(t, errdefs.IsInvalidArgument(err))
	assert.Check(t, is.ErrorContains(err, "nothing changes"))

	_, err = changed(st, func(s *spec.Service) error { s.Memory = -1; return nil })
	assert.Check(t, is.ErrorContains(err, "service web: "))
}

func TestNeedsContents(t *testing.T) {
	s := spec.Service{Name: "web"}
	assert.NilError(t, needsContents(s, UpdateOptions{}))
	s.Copies = []spec.Copy{{Target: "/etc/x"}}
	err := needsContents(s, UpdateOptions{})
	assert.Check(t, errdefs.IsFailedPrecondition(err))
	assert.Check(t, is.ErrorContains(err, "apply the file again"))
}

func TestChangedFieldsLeaveReplicasAndRevision(t *testing.T) {
	a := spec.Service{Name: "web", Image: "x", Replicas: 1, Revision: 4}
	b := spec.Service{Name: "web", Image: "x", Replicas: 3}
	assert.Check(t, is.Len(changedFields(a, b), 0))
	b.Env = []string{"A=1"}
	assert.Check(t, is.DeepEqual(changedFields(a, b), []string{"env"}))
}

// Cores and memory alone change in place, as resize does; anything else,
// or a change resize cannot make, replaces the replicas.
func TestInPlace(t *testing.T) {
	cur := spec.Service{Name: "web", Image: "x", Cores: 1, Memory: 64 << 20}
	next := cur
	next.Cores, next.Memory = 2, 96<<20
	req, ok := inPlace(cur, next)
	assert.Assert(t, ok)
	assert.Check(t, is.Equal(*req.Cores, 2))
	assert.Check(t, is.Equal(*req.Memory, int64(96<<20)))
	assert.Check(t, req.Cpuset == nil && req.MemorySwap == nil)

	next.Image = "y"
	_, ok = inPlace(cur, next)
	assert.Check(t, !ok, "an image change was taken as a resize")
	next = cur
	next.Cores = 0
	_, ok = inPlace(cur, next)
	assert.Check(t, !ok, "no exclusive cores cannot be made in place")
	_, ok = inPlace(cur, cur)
	assert.Check(t, !ok, "nothing to change")
}
