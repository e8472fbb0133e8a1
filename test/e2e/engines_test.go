//go:build e2e

package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The mixed fleet (make e2e-engines): FLEET_E2E_ENGINES names each host's
// engine as SIM_ENGINES made them, h1 first. These tests need its shape:
// h1 (the manager) and h3 an engine that restores checkpoints other than
// the machine's 20.10 (26.1), h2 the machine's 20.10, h4 Docker 28, which
// cannot restore one (enginecompat.RestoreProblem).
const engineHosts = "26,20.10,26,28"

// mixedFleet skips outside the mixed fleet, checks that the hosts run the
// engines it names, and makes the four-node fleet.
func mixedFleet(t *testing.T) {
	t.Helper()
	want := os.Getenv("FLEET_E2E_ENGINES")
	if want == "" {
		t.Skip("a mixed fleet only (make e2e-engines)")
	}
	assert.Assert(t, is.Equal(want, engineHosts), "these tests are written for SIM_ENGINES=%s", engineHosts)
	for i, v := range strings.Split(want, ",") {
		h := "h" + string(rune('1'+i))
		got := mustDocker(t, h, "version", "--format", "{{.Server.Version}}")
		assert.Assert(t, strings.HasPrefix(got, v+"."), "%s runs Docker %s, not %s", h, got, v)
	}
	r := docker(t, manager, "fleet", "init", "--subnet", subnet, "--worker", "h2", "--worker", "h3", "--worker", "h4")
	assert.Assert(t, r.Code == 0, "fleet init\n%s", r)
	// init's readiness table flags the engine that cannot restore.
	assert.Check(t, is.Contains(r.Stdout+r.Stderr, "h4: Docker 28."), r.String())
}

// Every node reports its engine, containerd, runc and cgroup version, and
// the one that cannot restore says why.
func TestEnginesDescribed(t *testing.T) {
	mixedFleet(t)
	seen := map[string]bool{}
	for _, n := range describeFleet(t).Nodes {
		assert.Assert(t, n.Info != nil, "node %s: %s", n.Hostname, n.Error)
		e := n.Info.Engine
		seen[n.Hostname] = true
		assert.Check(t, e.Runc != "", "node %s: runc version", n.Hostname)
		assert.Check(t, is.Equal(e.CgroupVersion, "1"), "node %s", n.Hostname)
		if strings.HasPrefix(e.Version, "28.") {
			assert.Check(t, !n.Info.Migration.Ready, "node %s", n.Hostname)
			assert.Check(t, is.Contains(strings.Join(n.Info.Migration.Problems, "\n"), "cannot restore a checkpointed container"))
		} else {
			assert.Check(t, n.Info.Migration.Ready, "node %s: %v", n.Hostname, n.Info.Migration.Problems)
		}
	}
	assert.Check(t, is.Len(seen, 4))
	out := mustFleet(t, "describe", "h4")
	assert.Check(t, is.Contains(out, "Runtime:"))
	assert.Check(t, is.Contains(out, "containerd 2."), out)
}

// A container moves between engines of different versions and between two
// of the same newer one, under polling over one kept-alive connection,
// with its state, and without one refused connection.
func TestEnginesMigrateAcrossVersions(t *testing.T) {
	mixedFleet(t)
	removeServices(t, "across")
	mustFleet(t, "create", "--name", "across", "--image", workload, "--node", "h2", "--cpus", "1", "--memory", "128m", "-e", "BALLAST_MB=16")
	ip := fleetIP(t, "across.1")
	st0 := ask(t, "h4", ip)
	stop := poller(t, "h4", ip)
	stopDials := dialer(t, "h4", ip)
	time.Sleep(time.Second)

	for _, hop := range []struct{ to, what string }{
		{"h1", "20.10 → 26.1"},
		{"h3", "26.1 → 26.1"},
		{"h2", "26.1 → 20.10"},
	} {
		r := fleetCmd(t, "migrate", "across.1", "--to", hop.to)
		assert.Assert(t, r.Code == 0, "%s: %s", hop.what, r)
		// The fast path (runc state found through the bundle) on each.
		assert.Check(t, !strings.Contains(r.Stderr, "no direct runc access"), "%s: %s", hop.what, r.Stderr)
		c, ok := containerOn(t, "across.1")
		assert.Assert(t, ok)
		assert.Check(t, is.Equal(c.Host, hop.to), hop.what)
		assert.Check(t, is.Equal(fleetIP(t, "across.1"), ip), hop.what)
		time.Sleep(time.Second)
	}

	poll := stop()
	t.Logf("poller: %+v", poll)
	assert.Check(t, is.Equal(poll.Dials, 1), "the poller's TCP connection did not survive: %+v", poll)
	assert.Check(t, !poll.WentBack, "the counter went back")
	dials := stopDials()
	t.Logf("dialer: %+v", dials)
	assert.Check(t, is.Equal(dials.Refused, 0), "%+v", dials)
	st1 := ask(t, "h4", ip)
	assert.Check(t, st1.Counter > st0.Counter)
	assert.Check(t, is.Equal(st1.Birth, st0.Birth))
	assert.Check(t, is.Equal(st1.BallastSHA256, st0.BallastSHA256))
	assert.Check(t, st1.BallastOK != nil && *st1.BallastOK, "ballast corrupted")
}

// On Docker 28 every command but migrate works; migrate is refused before
// anything is frozen, from it and to it, and the container runs on as it
// was.
func TestEnginesDocker28(t *testing.T) {
	mixedFleet(t)
	removeServices(t, "on28", "to28")
	mustFleet(t, "create", "--name", "on28", "--image", workload, "--node", "h4", "--cpus", "1", "--memory", "128m")
	mustFleet(t, "resize", "on28.1", "--memory", "192m")
	c, ok := containerOn(t, "on28.1")
	assert.Assert(t, ok)
	assert.Check(t, is.Equal(c.Host, "h4"))
	assert.Check(t, is.Equal(c.HostConfig.Memory, int64(192<<20)))
	mustFleet(t, "scale", "on28=2")
	assert.Check(t, is.Len(ofService(engineContainers(t), "on28"), 2))
	// The engine's pid and start time of a container change with any
	// checkpoint and restore.
	proc := func(host, name string) string {
		return mustDocker(t, host, "inspect", "-f", "{{.State.Pid}} {{.State.StartedAt}}", name)
	}
	before := proc("h4", "on28.1")

	r := fleetCmd(t, "migrate", "on28.1", "--to", "h1")
	assert.Check(t, r.Code != 0)
	assert.Check(t, is.Contains(r.Stderr, "keeps running on h4 untouched"))
	assert.Check(t, is.Contains(r.Stderr, "Docker 28."))
	assert.Check(t, !strings.Contains(r.Stderr, "checkpointing"), "refused before the freeze: %s", r.Stderr)
	assert.Check(t, is.Equal(proc("h4", "on28.1"), before), "the same process, never frozen")
	mustFleet(t, "rm", "on28")
	assert.Check(t, is.Len(ofService(engineContainers(t), "on28"), 0))

	mustFleet(t, "create", "--name", "to28", "--image", workload, "--node", "h2", "--cpus", "1", "--memory", "128m")
	before = proc("h2", "to28.1")
	r = fleetCmd(t, "migrate", "to28.1", "--to", "h4")
	assert.Check(t, r.Code != 0)
	assert.Check(t, is.Contains(r.Stderr, "node h4 cannot take a migrated container: Docker 28."))
	assert.Check(t, !strings.Contains(r.Stderr, "checkpointing"), "refused before the freeze: %s", r.Stderr)
	assert.Check(t, is.Equal(proc("h2", "to28.1"), before), "the same process, never frozen")
	c, ok = containerOn(t, "to28.1")
	assert.Assert(t, ok)
	assert.Check(t, is.Equal(c.Host, "h2"))
}
