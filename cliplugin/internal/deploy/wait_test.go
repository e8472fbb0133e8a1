package deploy

import (
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

func TestNeedsOf(t *testing.T) {
	web := projectService("shop", "web", "x")
	web.DependsOn = map[string]string{"db": spec.DependsStarted, "cache": spec.DependsStarted}
	api := projectService("shop", "api", "x")
	api.DependsOn = map[string]string{"db": spec.DependsHealthy}
	worker := projectService("shop", "worker", "x")
	worker.DependsOn = map[string]string{"queue": spec.DependsHealthy}
	svcs := []spec.Service{web, api, worker, projectService("shop", "db", "x")}

	// web and api are this wave, worker is not: db must be healthy for api
	// (which covers web's running).
	assert.Check(t, is.DeepEqual(needsOf([]string{"api", "web"}, svcs), []need{
		{service: "cache", cond: spec.DependsStarted, by: []string{"web"}},
		{service: "db", cond: spec.DependsHealthy, by: []string{"api", "web"}},
	}, cmp.AllowUnexported(need{})))
	assert.Check(t, is.Len(needsOf([]string{"db"}, svcs), 0))
}

// onNodes is an inventory of h1 and h2 holding the containers.
func onNodes(cs ...api.FleetContainer) fleet.Inventory {
	var inv fleet.Inventory
	for _, h := range []string{"h1", "h2"} {
		l := api.Ledger{Node: h}
		for _, c := range cs {
			if c.Node == h {
				l.Containers = append(l.Containers, c)
			}
		}
		inv = append(inv, &fleet.NodeState{Node: swarmstore.Node{Hostname: h}, Ledger: l})
	}
	return inv
}

func TestReady(t *testing.T) {
	healthy := need{service: "db", cond: spec.DependsHealthy, by: []string{"web"}}
	started := need{service: "db", cond: spec.DependsStarted, by: []string{"web"}}
	db := func(n int, node, state, health, restart string) api.FleetContainer {
		return api.FleetContainer{Name: "db." + string(rune('0'+n)), Service: "db", Node: node, State: state, Health: health, Restart: restart}
	}
	names := []string{"db.1", "db.2"}

	for _, c := range []struct {
		n      need
		inv    fleet.Inventory
		done   bool
		why    string
		err    string
		kindOK func(error) bool
	}{
		{n: started, inv: onNodes(db(1, "h1", "running", "", ""), db(2, "h2", "running", "starting", "")), done: true},
		{n: started, inv: onNodes(db(1, "h1", "running", "", ""), db(2, "h2", "created", "", "")), why: "db.2 on h2 is created"},
		{n: started, inv: onNodes(db(1, "h1", "running", "", "")), why: "db.2 is on no node that answers"},
		{n: started, inv: onNodes(db(1, "h1", "running", "", ""), db(2, "h2", "exited", "", "always")), why: "db.2 on h2 is exited"},
		{n: started, inv: onNodes(db(1, "h1", "exited", "", ""), db(2, "h2", "running", "", "")),
			err: "service web depends on db being running, but db.1 on h1 exited, and has no restart policy", kindOK: errdefs.IsFailedPrecondition},
		{n: healthy, inv: onNodes(db(1, "h1", "running", "healthy", ""), db(2, "h2", "running", "healthy", "")), done: true},
		{n: healthy, inv: onNodes(db(1, "h1", "running", "healthy", ""), db(2, "h2", "running", "starting", "")), why: "db.2 on h2 is running, health starting"},
		{n: healthy, inv: onNodes(db(1, "h1", "restarting", "", "always"), db(2, "h2", "running", "healthy", "")), why: "db.1 on h1 is restarting"},
		{n: healthy, inv: onNodes(db(1, "h1", "running", "unhealthy", ""), db(2, "h2", "running", "healthy", "")),
			err: "service web depends on db being healthy, but db.1 on h1 is unhealthy", kindOK: errdefs.IsFailedPrecondition},
		{n: healthy, inv: onNodes(db(1, "h1", "running", "", ""), db(2, "h2", "running", "healthy", "")),
			err: "service web depends on db being healthy, but db.1 has no healthcheck (none in the file or its image)", kindOK: errdefs.IsFailedPrecondition},
	} {
		done, why, err := ready(c.n, names, c.inv)
		if c.err != "" {
			assert.Check(t, is.Error(err, c.err))
			assert.Check(t, c.kindOK(err), "%v is not of its kind", err)
			continue
		}
		assert.NilError(t, err)
		assert.Check(t, is.Equal(done, c.done), c.why)
		assert.Check(t, is.Equal(why, c.why))
	}
	// A dependency of no replicas is ready at once.
	done, _, err := ready(healthy, nil, onNodes())
	assert.Check(t, done && err == nil)
}
