package deploy

import (
	"context"
	"errors"
	"slices"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/swarmstore"
)

func TestScaleUpAndDown(t *testing.T) {
	f := newFakeFleet(t, 3, 4)
	f.create(t, service("web", 2, 1))
	ctx := context.Background()
	replicas := func() int {
		s, err := swarmstore.LoadService(ctx, f.swarm, "web")
		assert.NilError(t, err)
		return s.Replicas
	}

	res, err := f.d.Scale(ctx, []ScaleTarget{{Service: "web", Replicas: 5}})
	assert.NilError(t, err)
	assert.Check(t, is.Len(res[0].Created, 3))
	assert.Check(t, is.Len(f.containers(t), 5))
	assert.Check(t, is.DeepEqual(f.claims(t), []string{"web.1", "web.2", "web.3", "web.4", "web.5"}))
	assert.Check(t, is.Equal(f.heldCores(t), 5))
	assert.Check(t, is.Equal(replicas(), 5))

	res, err = f.d.Scale(ctx, []ScaleTarget{{Service: "web", Replicas: 2}})
	assert.NilError(t, err)
	assert.Check(t, is.Len(res[0].Removed, 3))
	left := f.containers(t)
	assert.Check(t, is.Len(left, 2))
	var names []string
	nodes := map[string]bool{}
	for name, c := range left {
		names = append(names, name)
		nodes[c.Node] = true
	}
	slices.Sort(names)
	assert.Check(t, is.Len(nodes, 2), "from the busiest nodes first: two nodes keep one each")
	assert.Check(t, is.DeepEqual(f.claims(t), names), "the claims go with the replicas")
	assert.Check(t, is.Equal(f.heldCores(t), 2))
	assert.Check(t, is.Equal(replicas(), 2))
	drops := 0
	for _, n := range f.Nodes {
		drops += n.Calls("DropLogs")
	}
	assert.Check(t, is.Equal(drops, 3*2), "each removal has the other nodes drop the logs they kept")

	res, err = f.d.Scale(ctx, []ScaleTarget{{Service: "web", Replicas: 1, Add: true}})
	assert.NilError(t, err)
	assert.Check(t, is.Equal(res[0].To, 3))
	assert.Check(t, is.Len(f.containers(t), 3))
	assert.Check(t, is.Equal(replicas(), 3))
}

func TestScaleUpUndoesWhatItMadeWhenANodeFails(t *testing.T) {
	f := newFakeFleet(t, 3, 4)
	f.create(t, service("web", 2, 1))
	before := f.containers(t)
	f.Node("h3").Fail("Create", 0, errors.New("the engine of h3 broke"))

	_, err := f.d.Scale(context.Background(), []ScaleTarget{{Service: "web", Replicas: 6}})
	assert.Check(t, is.ErrorContains(err, "the engine of h3 broke"))
	assert.Check(t, is.DeepEqual(f.containers(t), before), "the new replicas are removed, the others untouched")
	assert.Check(t, is.DeepEqual(f.claims(t), []string{"web.1", "web.2"}))
	s, err := swarmstore.LoadService(context.Background(), f.swarm, "web")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(s.Replicas, 2))
}

func TestScaleRefusesWhileANodeDoesNotAnswer(t *testing.T) {
	f := newFakeFleet(t, 2, 4)
	f.create(t, service("web", 2, 1))
	f.Node("h2").SetDown(errors.New("connection refused"))

	_, err := f.d.Scale(context.Background(), []ScaleTarget{{Service: "web", Replicas: 1}})
	assert.Check(t, is.ErrorContains(err, "cannot count the replicas of web"))
	assert.Check(t, is.ErrorContains(err, "connection refused"))
}
