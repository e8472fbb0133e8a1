package swarmtest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
	"github.com/docker-fleet/fleet/shared/swarmstore/swarmtest"
)

func TestTheStoreOnTheFake(t *testing.T) {
	ctx := context.Background()
	s := swarmtest.New()

	web := spec.Service{Name: "web", Image: "app", Replicas: 2}
	assert.NilError(t, swarmstore.SaveService(ctx, s, web))
	assert.Check(t, is.ErrorIs(swarmstore.SaveService(ctx, s, web), swarmstore.ErrServiceExists))
	_, err := swarmstore.LoadService(ctx, s, "db")
	assert.Check(t, is.ErrorIs(err, swarmstore.ErrNoService))
	assert.NilError(t, swarmstore.AddReplicas(ctx, s, "web", 3))
	got, err := swarmstore.LoadService(ctx, s, "web")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(got.Replicas, 5))

	exists := func(string) bool { return false }
	ok, err := swarmstore.ClaimReplica(ctx, s, "web", 1, "h1", exists)
	assert.NilError(t, err)
	assert.Check(t, ok)
	ok, err = swarmstore.ClaimReplica(ctx, s, "web", 1, "h2", exists)
	assert.NilError(t, err)
	assert.Check(t, !ok, "claimed once")
	claims, err := swarmstore.Claims(ctx, s)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(claims, []swarmstore.Claim{{Name: "web.1", Node: "h1"}}))
	assert.NilError(t, swarmstore.ReleaseReplicas(ctx, s, "web"))
	assert.Check(t, is.Len(s.Configs(labels.ReplicaOf), 0))

	_, err = swarmstore.FindNetwork(ctx, s)
	assert.Check(t, is.ErrorIs(err, swarmstore.ErrNoFleet))
	s.AddFleetNetwork("fleet", "10.10.0.0/24")
	n, err := swarmstore.FindNetwork(ctx, s)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(n.Subnet, "10.10.0.0/24"))
}

func TestConfigUpdateOnTheVersionRead(t *testing.T) {
	ctx := context.Background()
	s := swarmtest.New()
	assert.NilError(t, swarmstore.SaveService(ctx, s, spec.Service{Name: "web", Image: "app"}))
	read, err := s.ConfigInspect(ctx, labels.ServiceConfigPrefix+"web", client.ConfigInspectOptions{})
	assert.NilError(t, err)
	read.Config.Spec.Labels["x"] = "1"
	assert.Check(t, is.Len(s.Configs(labels.Service)[0].Spec.Labels["x"], 0), "what a caller is given is its own")

	assert.NilError(t, swarmstore.SetReplicas(ctx, s, "web", 4))
	_, err = s.ConfigUpdate(ctx, read.Config.ID, client.ConfigUpdateOptions{Version: read.Config.Version, Spec: read.Config.Spec})
	assert.Check(t, errdefs.IsConflict(err), "the version moved on")

	boom := errors.New("boom")
	s.Fail("ConfigUpdate", 0, boom)
	assert.Check(t, is.ErrorIs(swarmstore.SetReplicas(ctx, s, "web", 5), boom))
	assert.Check(t, s.Calls("ConfigUpdate") >= 3)
}

func TestSetAvailabilityOnTheFake(t *testing.T) {
	ctx := context.Background()
	s := swarmtest.New()
	h2 := s.AddNode("h2", "worker", 7477)

	changed, err := swarmstore.SetAvailability(ctx, s, h2.ID, swarm.NodeAvailabilityDrain)
	assert.NilError(t, err)
	assert.Check(t, changed)
	nodes, err := swarmstore.Nodes(ctx, s)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(nodes[0].Availability, "drain"))
	assert.Check(t, is.Equal(nodes[0].AgentPort, 7477), "the rest of the spec is kept")

	changed, err = swarmstore.SetAvailability(ctx, s, "h2", swarm.NodeAvailabilityDrain)
	assert.NilError(t, err)
	assert.Check(t, !changed, "drained already")
	assert.Check(t, is.Equal(s.Calls("NodeUpdate"), 1))

	// An update on a version that moved on is refused, as the swarm does.
	read, err := s.NodeInspect(ctx, "h2", client.NodeInspectOptions{})
	assert.NilError(t, err)
	_, err = swarmstore.SetAvailability(ctx, s, "h2", swarm.NodeAvailabilityActive)
	assert.NilError(t, err)
	_, err = s.NodeUpdate(ctx, "h2", client.NodeUpdateOptions{Version: read.Node.Version, Spec: read.Node.Spec})
	assert.Check(t, errdefs.IsConflict(err))

	_, err = swarmstore.SetAvailability(ctx, s, "h9", swarm.NodeAvailabilityActive)
	assert.Check(t, errdefs.IsNotFound(err))
}
