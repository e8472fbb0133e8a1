package leader

import (
	"context"
	"slices"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// constrain stores web anew with those placement constraints, and labels
// the nodes named disk=ssd.
func constrain(t *testing.T, fx *fleetFixture, cons []string, ssd ...string) {
	t.Helper()
	ctx := context.Background()
	assert.NilError(t, swarmstore.DeleteService(ctx, fx.sw, "web"))
	assert.NilError(t, swarmstore.SaveService(ctx, fx.sw, spec.Service{Name: "web", Image: "img", Replicas: 2, Cores: 1, Constraints: cons}))
	fx.sw.mu.Lock()
	defer fx.sw.mu.Unlock()
	for i, n := range fx.sw.nodes {
		if slices.Contains(ssd, n.Description.Hostname) {
			fx.sw.nodes[i].Spec.Labels["disk"] = "ssd"
		}
	}
}

// TestColdRelocationHonoursConstraints: web.2 of dead h3 goes to h2, the
// other node labelled disk=ssd, though h1 has more cores free.
func TestColdRelocationHonoursConstraints(t *testing.T) {
	ctx := context.Background()
	fx := newFleet(t, "1ms")
	constrain(t, fx, []string{"node.labels.disk==ssd"}, "h2", "h3")
	l := fx.leader()
	assert.NilError(t, l.Round(ctx))
	fx.kill("h3")
	time.Sleep(5 * time.Millisecond)
	assert.NilError(t, l.Round(ctx))
	assert.Check(t, is.DeepEqual(fx.where("web.2"), []string{"h2"}))
}

// TestColdRelocationWaitsForAMatchingNode: no live node has the label, so
// web.2 stays wanted until one has.
func TestColdRelocationWaitsForAMatchingNode(t *testing.T) {
	ctx := context.Background()
	fx := newFleet(t, "1ms")
	constrain(t, fx, []string{"node.labels.disk==ssd"}, "h3")
	l := fx.leader()
	assert.NilError(t, l.Round(ctx))
	fx.kill("h3")
	time.Sleep(5 * time.Millisecond)
	assert.NilError(t, l.Round(ctx))
	assert.NilError(t, l.Round(ctx))
	assert.Check(t, is.Len(fx.where("web.2"), 0), "h1 and h2 have no disk label")
	constrain(t, fx, []string{"node.labels.disk==ssd"}, "h1")
	assert.NilError(t, l.Round(ctx))
	assert.Check(t, is.DeepEqual(fx.where("web.2"), []string{"h1"}))
}

// TestStandbyHonoursConstraints: web.2's standby is h2, the other worker,
// though h1 (a manager) has more cores free.
func TestStandbyHonoursConstraints(t *testing.T) {
	ctx := context.Background()
	fx := warmFleet(t)
	constrain(t, fx, []string{"node.role==worker"})
	l := fx.leader()
	assert.NilError(t, l.Round(ctx))
	assert.Check(t, is.Len(fx.agents["h1"].expects, 0))
	assert.Assert(t, is.Len(fx.agents["h2"].expects, 1))
	assert.Check(t, is.Equal(fx.agents["h2"].expects[0].Container, "web.2"))
	assert.Check(t, is.Equal(fx.agents["h3"].containers[0].Checkpoint.Standby, "h2"))
}
