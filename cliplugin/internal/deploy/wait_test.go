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

	// Completed outranks healthy and started: a wave cannot wait for a
	// one-shot service to be both healthy and done, and done comes after.
	seed := projectService("shop", "seed", "x")
	seed.DependsOn = map[string]string{"db": spec.DependsCompleted}
	svcs = append(svcs, seed)
	assert.Check(t, is.DeepEqual(needsOf([]string{"api", "seed", "web"}, svcs), []need{
		{service: "cache", cond: spec.DependsStarted, by: []string{"web"}},
		{service: "db", cond: spec.DependsCompleted, by: []string{"api", "seed", "web"}},
	}, cmp.AllowUnexported(need{})))
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
	completed := need{service: "db", cond: spec.DependsCompleted, by: []string{"web"}}
	// exit gives c the exit code its agent reports.
	exit := func(c api.FleetContainer, code int) api.FleetContainer {
		c.ExitCode = &code
		return c
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
		// Completed: exiting with no restart policy is what is waited for.
		{n: completed, inv: onNodes(exit(db(1, "h1", "exited", "", ""), 0), exit(db(2, "h2", "exited", "", "on-failure"), 0)), done: true},
		{n: completed, inv: onNodes(exit(db(1, "h1", "exited", "", ""), 0), db(2, "h2", "running", "", "")), why: "db.2 on h2 is still running"},
		{n: completed, inv: onNodes(exit(db(1, "h1", "exited", "", ""), 0), db(2, "h2", "restarting", "", "on-failure")), why: "db.2 on h2 is restarting"},
		{n: completed, inv: onNodes(exit(db(1, "h1", "exited", "", ""), 0), db(2, "h2", "created", "", "")), why: "db.2 on h2 is created"},
		{n: completed, inv: onNodes(exit(db(1, "h1", "exited", "", ""), 0)), why: "db.2 is on no node that answers"},
		{n: completed, inv: onNodes(exit(db(1, "h1", "exited", "", ""), 0), exit(db(2, "h2", "exited", "", ""), 3)),
			err: "service web depends on db being completed successfully, but db.2 on h2 exited with code 3", kindOK: errdefs.IsFailedPrecondition},
		// An agent from before exit codes: success cannot be told.
		{n: completed, inv: onNodes(db(1, "h1", "exited", "", ""), exit(db(2, "h2", "exited", "", ""), 0)),
			err: "service web depends on db being completed successfully, but db.1 on h1 exited, and the agent on h1 does not report exit codes; upgrade the fleet with docker fleet init", kindOK: errdefs.IsFailedPrecondition},
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
