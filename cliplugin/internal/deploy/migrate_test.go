package deploy

import (
	"context"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
)

func TestMigrateMovesAndRecords(t *testing.T) {
	f := newFakeFleet(t, 2, 4)
	f.create(t, service("web", 1, 2))
	from := f.nodeOf(t, "web.1")
	to := f.Node("h1")
	if from == to {
		to = f.Node("h2")
	}

	var events []api.MigrateEvent
	res, err := f.d.Migrate(context.Background(), "web.1", "", func(ev api.MigrateEvent) { events = append(events, ev) })
	assert.NilError(t, err)
	assert.Check(t, is.Equal(res.To, to.Swarm.Hostname), "the scheduler's choice: the other node")
	assert.Check(t, is.Equal(events[0].Phase, api.PhaseStart))
	assert.Check(t, is.Len(from.Containers(), 0))
	c, ok := to.Container("web.1")
	assert.Assert(t, ok)
	assert.Check(t, is.Equal(c.Cpuset, "0-1"), "its cores booked on the destination")

	hist, err := f.d.Fleet.History(context.Background(), "web.1")
	assert.NilError(t, err)
	assert.Check(t, is.Len(hist, 1))

	// rm forgets it all: the container, its claim, its history.
	removed, err := f.d.Remove(context.Background(), []string{"web"})
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(removed, []string{"web.1", "web"}))
	assert.Check(t, is.Len(f.containers(t), 0))
	assert.Check(t, is.Len(f.claims(t), 0))
	assert.Check(t, is.Len(f.stored(t), 0))
	hist, err = f.d.Fleet.History(context.Background(), "web.1")
	assert.NilError(t, err)
	assert.Check(t, is.Len(hist, 0))
}
