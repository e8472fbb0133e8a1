//go:build e2e

package e2e

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// rebalanceView is the part of rebalance's and drain's --format json the
// tests read.
type rebalanceView struct {
	Drained []string `json:"drained"`
	Moves   []struct {
		Container, From, To, Why string
	} `json:"moves"`
	LeftOut []struct {
		Container, Node, Why string
	} `json:"leftOut"`
	Results []struct {
		Container, From, To, Error string
		Migration                  *struct {
			Downtime float64 `json:"downtimeSeconds"`
		} `json:"migration"`
	} `json:"results"`
	DryRun bool `json:"dryRun"`
}

func rebalanceJSON(t *testing.T, r result) rebalanceView {
	t.Helper()
	var v rebalanceView
	assert.NilError(t, json.Unmarshal([]byte(r.Stdout), &v), r.String())
	return v
}

// replicasPerHost counts the replicas of svc on each host, as the
// engines have them.
func replicasPerHost(t *testing.T, svc string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, c := range ofService(engineContainers(t), svc) {
		out[c.Host]++
	}
	return out
}

// availability is a node's swarm availability as its manager has it.
func availability(t *testing.T, h string) string {
	t.Helper()
	return strings.TrimSpace(mustDocker(t, manager, "node", "inspect", h, "--format", "{{.Spec.Availability}}"))
}

// assertKeptState checks that each replica answers with the state it had:
// the file of its first start, its ballast intact, its counter not back.
func assertKeptState(t *testing.T, ips map[string]string, before map[string]workloadState) {
	t.Helper()
	for name, st0 := range before {
		st := ask(t, manager, ips[name])
		assert.Check(t, is.Equal(st.Birth, st0.Birth), "%s: a new process, not the one that moved", name)
		assert.Check(t, st.Counter >= st0.Counter, "%s: counter %d after %d", name, st.Counter, st0.Counter)
		assert.Check(t, st.BallastOK != nil && *st.BallastOK, "%s: ballast corrupted", name)
		assert.Check(t, is.Equal(st.BallastSHA256, st0.BallastSHA256), name)
	}
}

// TestRebalanceSpreadsLive has six replicas made on h1 alone (its workers
// drained meanwhile, as if they had not joined yet), and a replica placed
// there with --node; once the workers take work again, rebalance spreads
// the six live, 2/2/2, each with its memory, and leaves the other.
func TestRebalanceSpreadsLive(t *testing.T) {
	initFleet(t)
	removeServices(t, "spread", "pinned")
	t.Cleanup(func() { fleetCmd(t, "activate", "h2", "h3") })
	mustFleet(t, "drain", "h2")
	mustFleet(t, "drain", "h3")
	assert.Check(t, is.Equal(availability(t, "h2"), "drain"))
	mustFleet(t, "create", "--name", "spread", "--image", workload, "--replicas", "6", "--memory", "64m", "-e", "BALLAST_MB=8")
	mustFleet(t, "create", "--name", "pinned", "--image", workload, "--node", "h1", "--memory", "64m", "-e", "BALLAST_MB=4")
	assert.Assert(t, is.DeepEqual(replicasPerHost(t, "spread"), map[string]int{"h1": 6}), "a drained node takes nothing")
	mustFleet(t, "activate", "h2", "h3")
	assert.Check(t, is.Equal(availability(t, "h3"), "active"))

	ips := map[string]string{}
	before := map[string]workloadState{}
	for _, c := range ofService(engineContainers(t), "spread") {
		ips[c.Name] = fleetIP(t, c.Name)
		before[c.Name] = ask(t, manager, ips[c.Name])
	}
	pinnedBefore, _ := containerOn(t, "pinned.1")

	// The plan, and nothing changes.
	startedOn := map[string]string{}
	for _, c := range ofService(engineContainers(t), "spread") {
		startedOn[c.Name] = c.State.StartedAt
	}
	dry := rebalanceJSON(t, fleetCmd(t, "rebalance", "spread", "pinned", "--dry-run", "--format", "json"))
	assert.Check(t, dry.DryRun)
	assert.Check(t, is.Len(dry.Moves, 4), "%+v", dry.Moves)
	for _, m := range dry.Moves {
		assert.Check(t, is.Equal(m.From, "h1"), "%+v", m)
		assert.Check(t, strings.HasPrefix(m.Container, "spread."), "%+v", m)
		assert.Check(t, is.Contains(m.Why, "evens out spread"))
	}
	assert.Check(t, is.Len(dry.LeftOut, 1))
	assert.Check(t, is.Equal(dry.LeftOut[0].Why, "placed with --node h1"))
	assert.Check(t, is.Len(dry.Results, 0))
	for _, c := range ofService(engineContainers(t), "spread") {
		assert.Check(t, is.Equal(c.Host, "h1"), "a dry run moved %s", c.Name)
		assert.Check(t, is.Equal(c.State.StartedAt, startedOn[c.Name]), "a dry run touched %s", c.Name)
	}
	table := mustFleet(t, "rebalance", "spread", "--dry-run")
	assert.Check(t, is.Contains(table, "(dry run: nothing was moved)"))

	// Carried out: live, each replica with its memory.
	r := fleetCmd(t, "rebalance", "spread", "pinned", "--format", "json")
	assert.Assert(t, r.Code == 0, r.String())
	done := rebalanceJSON(t, r)
	assert.Check(t, is.Len(done.Results, 4))
	for _, res := range done.Results {
		assert.Check(t, is.Equal(res.Error, ""), res.Container)
		assert.Check(t, res.Migration != nil, res.Container)
		c, ok := containerOn(t, res.Container)
		assert.Check(t, ok && c.Host == res.To, "%s on %s, not %s", res.Container, c.Host, res.To)
	}
	assert.Check(t, is.DeepEqual(replicasPerHost(t, "spread"), map[string]int{"h1": 2, "h2": 2, "h3": 2}))
	assertKeptState(t, ips, before)
	assertDisjointCores(t, engineContainers(t))
	pinnedAfter, ok := containerOn(t, "pinned.1")
	assert.Check(t, ok && pinnedAfter.Host == "h1", "the --node replica moved")
	assert.Check(t, is.Equal(pinnedAfter.State.StartedAt, pinnedBefore.State.StartedAt))

	// Spread reached: a second run has nothing to do.
	again := rebalanceJSON(t, fleetCmd(t, "rebalance", "spread", "pinned", "--format", "json"))
	assert.Check(t, is.Len(again.Moves, 0), "%+v", again.Moves)
	assert.Check(t, is.Contains(mustFleet(t, "rebalance", "spread"), "nothing to move"))
}

// TestDrainEmptiesANodeLive drains h3: its containers move off live, new
// ones avoid it, and once active again it takes work.
func TestDrainEmptiesANodeLive(t *testing.T) {
	initFleet(t)
	removeServices(t, "drained", "after")
	t.Cleanup(func() { fleetCmd(t, "activate", "h3") })
	mustFleet(t, "create", "--name", "drained", "--image", workload, "--replicas", "3", "--memory", "64m", "-e", "BALLAST_MB=8")
	ips := map[string]string{}
	before := map[string]workloadState{}
	for _, c := range ofService(engineContainers(t), "drained") {
		if c.Host == "h3" {
			ips[c.Name] = fleetIP(t, c.Name)
			before[c.Name] = ask(t, manager, ips[c.Name])
		}
	}
	assert.Assert(t, len(before) > 0, "spread puts a replica on h3: %v", replicasPerHost(t, "drained"))

	r := fleetCmd(t, "drain", "h3", "--format", "json")
	assert.Assert(t, r.Code == 0, r.String())
	v := rebalanceJSON(t, r)
	assert.Check(t, is.DeepEqual(v.Drained, []string{"h3"}))
	assert.Check(t, is.Len(v.Results, len(before)))
	for _, res := range v.Results {
		assert.Check(t, is.Equal(res.Error, ""), res.Container)
		assert.Check(t, res.To != "h3", "%+v", res)
	}
	assert.Check(t, is.Equal(availability(t, "h3"), "drain"))
	assert.Check(t, is.Equal(replicasPerHost(t, "drained")["h3"], 0), "%v", replicasPerHost(t, "drained"))
	assertKeptState(t, ips, before)
	_, listed := swarmNodes(t)["h3"]
	assert.Check(t, listed, "h3 stays in the fleet")

	// A new create avoids it.
	mustFleet(t, "create", "--name", "after", "--image", workload, "--replicas", "3", "--memory", "64m", "-e", "BALLAST_MB=4")
	assert.Check(t, is.Equal(replicasPerHost(t, "after")["h3"], 0), "%v", replicasPerHost(t, "after"))

	// Active again, it takes work: it runs the fewest containers.
	assert.Check(t, is.Contains(mustFleet(t, "activate", "h3"), "h3 is active"))
	assert.Check(t, is.Equal(availability(t, "h3"), "active"))
	mustFleet(t, "scale", "after=4")
	c, ok := containerOn(t, "after.4")
	assert.Check(t, ok && c.Host == "h3", "after.4 on %s", c.Host)
}

// TestRebalanceByLoadDryRun: two containers that burn a core each on h2,
// idle ones elsewhere. Even by count, the plan by load moves one burner
// off h2, and a dry run moves nothing.
func TestRebalanceByLoadDryRun(t *testing.T) {
	initFleet(t)
	svcs := []string{"burna", "burnb", "idle"}
	removeServices(t, svcs...)
	for _, s := range svcs[:2] {
		mustFleet(t, "create", "--name", s, "--image", workload, "--memory", "32m", "-e", "BALLAST_MB=1", "-e", "BURN=45s")
		if c, ok := containerOn(t, s+".1"); ok && c.Host != "h2" {
			mustFleet(t, "migrate", s+".1", "--to", "h2")
		}
	}
	mustFleet(t, "create", "--name", "idle", "--image", workload, "--replicas", "2", "--memory", "32m", "-e", "BALLAST_MB=1")

	var plan rebalanceView
	var byLoad []string
	for range 30 {
		plan = rebalanceJSON(t, fleetCmd(t, append([]string{"rebalance", "--dry-run", "--format", "json"}, svcs...)...))
		byLoad = nil
		for _, m := range plan.Moves {
			if strings.HasPrefix(m.Why, "evens out load") {
				byLoad = append(byLoad, m.Container)
			}
		}
		if len(byLoad) > 0 {
			break
		}
		time.Sleep(time.Second)
	}
	t.Logf("plan: %+v", plan.Moves)
	assert.Assert(t, is.Len(byLoad, 1), "one burner moved off h2 for load: %+v", plan.Moves)
	for _, m := range plan.Moves {
		assert.Check(t, strings.HasPrefix(m.Container, "burn"), "only a burner moves: %+v", m)
		assert.Check(t, is.Equal(m.From, "h2"), "%+v", m)
		assert.Check(t, m.To != "h2", "%+v", m)
	}
	assert.Check(t, is.Len(plan.Results, 0))
	for _, s := range svcs[:2] {
		c, ok := containerOn(t, s+".1")
		assert.Check(t, ok && c.Host == "h2", "a dry run moved %s", s)
	}
}

// TestAutoRebalance has init --rebalance-every turn the leader's agent
// loose on four replicas made on h1 alone: it spreads them live, one move
// each interval (--rebalance-max-moves 1), each replica keeping its
// memory and each move a fleet event saying so; --rebalance-every 0 turns
// it off.
func TestAutoRebalance(t *testing.T) {
	initFleet(t)
	// The automatic rebalance evens out every service: only this one runs.
	removeServices(t, strings.Fields(mustFleet(t, "describe", "--format", "{{range .Services}}{{.Name}} {{end}}"))...)
	t.Cleanup(func() {
		fleetCmd(t, "activate", "h2", "h3")
		fleetCmd(t, "init", "--rebalance-every", "0")
		removeServices(t, "auto")
	})
	mustFleet(t, "drain", "h2")
	mustFleet(t, "drain", "h3")
	mustFleet(t, "create", "--name", "auto", "--image", workload, "--replicas", "4", "--memory", "48m", "-e", "BALLAST_MB=4")
	assert.Assert(t, is.DeepEqual(replicasPerHost(t, "auto"), map[string]int{"h1": 4}))
	ips := map[string]string{}
	before := map[string]workloadState{}
	for _, c := range ofService(engineContainers(t), "auto") {
		ips[c.Name] = fleetIP(t, c.Name)
		before[c.Name] = ask(t, manager, ips[c.Name])
	}
	mustFleet(t, "activate", "h2", "h3")
	// Nothing moves until asked: the fleet rebalances when told to.
	time.Sleep(5 * time.Second)
	assert.Check(t, is.DeepEqual(replicasPerHost(t, "auto"), map[string]int{"h1": 4}), "moved without being asked")

	asked := time.Now()
	since := strconv.FormatInt(asked.Unix(), 10)
	out := mustFleet(t, "init", "--rebalance-every", "10s", "--rebalance-max-moves", "1")
	assert.Check(t, is.Contains(out, "rebalance: every 10s, at most 1 live migration(s) each time"))
	assert.Check(t, is.Contains(mustFleet(t, "describe"), "every 10s by the swarm leader's agent, at most 1"))

	spread := func(n map[string]int) bool { return n["h1"] <= 2 && n["h2"] >= 1 && n["h3"] >= 1 }
	deadline := time.Now().Add(2 * time.Minute)
	for !spread(replicasPerHost(t, "auto")) && time.Now().Before(deadline) {
		time.Sleep(2 * time.Second)
	}
	assert.Assert(t, spread(replicasPerHost(t, "auto")), "%v", replicasPerHost(t, "auto"))
	assertKeptState(t, ips, before)

	// Each move is an event; one move a look, so the second came after a
	// second look, an interval after the first at least.
	var moves []time.Time
	for _, line := range strings.Split(strings.TrimSpace(mustFleet(t, "events", "--since", since, "--until", "0s", "--format", "json")), "\n") {
		var ev struct {
			Type, Container, By string
			Time                time.Time
		}
		assert.NilError(t, json.Unmarshal([]byte(line), &ev), line)
		if ev.Type == "migration" && strings.HasPrefix(ev.Container, "auto.") {
			assert.Check(t, is.Contains(ev.By, "the automatic rebalance: evens out auto"), line)
			moves = append(moves, ev.Time)
		}
	}
	assert.Assert(t, len(moves) >= 2, "%v", moves)
	assert.Check(t, moves[1].Sub(asked) >= 10*time.Second, "the second move came %s after --rebalance-every 10s --rebalance-max-moves 1", moves[1].Sub(asked))

	// Off: nothing moves any more.
	mustFleet(t, "init", "--rebalance-every", "0")
	assert.Check(t, is.Contains(mustFleet(t, "describe"), "when asked (docker fleet rebalance"))
}
