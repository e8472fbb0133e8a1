package deploy

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet/fleettest"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

func TestCreatePlacesReplicasAndBooksTheirCores(t *testing.T) {
	f := newFakeFleet(t, 3, 4)
	made := f.create(t, service("web", 3, 2))

	assert.Check(t, is.Len(made, 3))
	nodes := map[string]bool{}
	for _, c := range made {
		set, err := cpuset.Parse(c.Cpuset)
		assert.NilError(t, err)
		assert.Check(t, is.Len(set, 2), "%s holds its two cores", c.Name)
		assert.Check(t, c.Exclusive)
		nodes[c.Node] = true
	}
	assert.Check(t, is.Len(nodes, 3), "spread: one replica a node")
	assert.Check(t, is.Equal(f.heldCores(t), 6))
	assert.Check(t, is.DeepEqual(f.claims(t), []string{"web.1", "web.2", "web.3"}))
	s, err := swarmstore.LoadService(context.Background(), f.swarm, "web")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(s.Replicas, 3))

	// The image, on no node, was pulled once and sent from there.
	for _, n := range f.Nodes {
		assert.Check(t, is.DeepEqual(n.ImagesOf(), []string{"app:1"}), n.Swarm.Hostname)
	}
	assert.Check(t, is.Equal(f.Node("h1").Calls("SendImage"), 2), "the leader sends what it has")
}

func TestCreateUndoesEverythingWhenANodeFails(t *testing.T) {
	f := newFakeFleet(t, 3, 4)
	f.Node("h3").Fail("Create", 0, errors.New("the engine of h3 broke"))

	_, err := f.d.Create(context.Background(), []spec.Service{service("web", 3, 1), service("db", 1, 1)}, CreateOptions{})
	assert.Check(t, is.ErrorContains(err, "the engine of h3 broke"))

	assert.Check(t, is.Len(f.containers(t), 0), "every replica made is removed")
	assert.Check(t, is.Equal(f.heldCores(t), 0))
	assert.Check(t, is.Len(f.stored(t), 0), "every definition is dropped")
	assert.Check(t, is.Len(f.claims(t), 0), "every name claim is dropped")
	assert.Check(t, f.Node("h3").Calls("Create") > 0)
}

func TestCreatePlacesAReplicaAnewAfterALostRace(t *testing.T) {
	f := newFakeFleet(t, 2, 4)
	// Another command takes every core of the first node asked, between
	// this one's reading of the fleet and its create there: the agent
	// refuses with a conflict.
	var once sync.Once
	var raced *fleettest.Node
	for _, n := range f.Nodes {
		n.OnCall("Create", 1, func() error {
			once.Do(func() { raced = n; n.Pin("another-command", n.Cores()) })
			return nil
		})
	}
	made := f.create(t, service("web", 1, 3))

	assert.Assert(t, raced != nil)
	assert.Assert(t, is.Len(made, 1))
	assert.Check(t, made[0].Node != raced.Swarm.Hostname, "placed on the node that has the cores")
	assert.Check(t, is.Len(raced.Containers(), 0))
	for _, n := range f.Nodes {
		assert.Check(t, is.Equal(n.Calls("Create"), 1), n.Swarm.Hostname)
	}
}

func TestCreateRefusesWhatNoNodeHasRoomFor(t *testing.T) {
	f := newFakeFleet(t, 2, 4)
	f.create(t, service("web", 2, 3))

	_, err := f.d.Create(context.Background(), []spec.Service{service("db", 1, 2)}, CreateOptions{})
	assert.Check(t, is.ErrorContains(err, "cannot place 1 replica(s) of db"))
	assert.Check(t, is.DeepEqual(f.stored(t), []string{"web"}), "nothing made")
	for _, n := range f.Nodes {
		assert.Check(t, !slices.ContainsFunc(n.Containers(), func(c string) bool { return c == "db.1" }))
	}
	_, err = f.d.Create(context.Background(), []spec.Service{service("web", 1, 1)}, CreateOptions{})
	assert.Check(t, errdefs.IsAlreadyExists(err))
}
