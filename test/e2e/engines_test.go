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
// h1 (the manager) and h4 Docker 28 with containerd 2, which restore a
// migrated container into a network holder (enginecompat.NeedsNetnsHolder);
// h2 the machine's 20.10; h3 Docker 26.1.
const engineHosts = "28,20.10,26,28"

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
	assert.Check(t, is.Contains(r.Stdout, "4 ready to migrate"), r.String())
}

// Every node reports its engine, containerd, runc and cgroup version, and
// every one can migrate.
func TestEnginesDescribed(t *testing.T) {
	mixedFleet(t)
	seen := map[string]bool{}
	for _, n := range describeFleet(t).Nodes {
		assert.Assert(t, n.Info != nil, "node %s: %s", n.Hostname, n.Error)
		e := n.Info.Engine
		seen[n.Hostname] = true
		assert.Check(t, e.Runc != "", "node %s: runc version", n.Hostname)
		assert.Check(t, is.Equal(e.CgroupVersion, "1"), "node %s", n.Hostname)
		assert.Check(t, n.Info.Migration.Ready, "node %s: %v", n.Hostname, n.Info.Migration.Problems)
	}
	assert.Check(t, is.Len(seen, 4))
	out := mustFleet(t, "describe", "h4")
	assert.Check(t, is.Contains(out, "Runtime:"))
	assert.Check(t, is.Contains(out, "containerd 2."), out)
}

// hop is one migration of a tour across the fleet's engines.
type hop struct{ to, what string }

// tour migrates name along hops under a poller over one kept-alive
// connection and a dialer, checking each hop took the fast path and kept
// the address, and at the end that the connection, the state and every
// new connection survived.
func tour(t *testing.T, name, from string, hops []hop) {
	t.Helper()
	ip := fleetIP(t, name)
	st0 := ask(t, from, ip)
	stop := poller(t, from, ip)
	stopDials := dialer(t, from, ip)
	time.Sleep(time.Second)
	for _, h := range hops {
		r := fleetCmd(t, "migrate", name, "--to", h.to)
		assert.Assert(t, r.Code == 0, "%s: %s", h.what, r)
		// The fast path (runc state found through the bundle) on each.
		assert.Check(t, !strings.Contains(r.Stderr, "no direct runc access"), "%s: %s", h.what, r.Stderr)
		c, ok := containerOn(t, name)
		assert.Assert(t, ok)
		assert.Check(t, is.Equal(c.Host, h.to), h.what)
		assert.Check(t, is.Equal(fleetIP(t, name), ip), h.what)
		time.Sleep(time.Second)
	}
	poll := stop()
	t.Logf("poller: %+v", poll)
	assert.Check(t, is.Equal(poll.Dials, 1), "the poller's TCP connection did not survive: %+v", poll)
	assert.Check(t, !poll.WentBack, "the counter went back")
	dials := stopDials()
	t.Logf("dialer: %+v", dials)
	assert.Check(t, is.Equal(dials.Refused, 0), "%+v", dials)
	st1 := ask(t, from, ip)
	assert.Check(t, st1.Counter > st0.Counter)
	assert.Check(t, is.Equal(st1.Birth, st0.Birth))
	assert.Check(t, is.Equal(st1.BallastSHA256, st0.BallastSHA256))
	assert.Check(t, st1.BallastOK != nil && *st1.BallastOK, "ballast corrupted")
}

// holderOf reports whether name runs in a network holder's namespace on
// host h, and checks that nothing of it is left on the others.
func holderOf(t *testing.T, h, name string) bool {
	t.Helper()
	for _, other := range []string{"h1", "h2", "h3", "h4"} {
		if other != h {
			noTwinLeft(t, other, name)
		}
	}
	mode := mustDocker(t, h, "inspect", "-f", "{{.HostConfig.NetworkMode}}", name)
	if !strings.HasPrefix(mode, "container:") {
		return false
	}
	holder := mustDocker(t, h, "inspect", "-f", `{{index .Config.Labels "com.docker.fleet.netns-of"}}`, strings.TrimPrefix(mode, "container:"))
	assert.Check(t, is.Equal(holder, name))
	return true
}

// A container made on 20.10 moves to Docker 28 (into a network holder),
// between the two Docker 28 nodes, to 26.1 and back to 20.10 (taking its
// holder along), under polling, with its state.
func TestEnginesMigrateAcrossVersions(t *testing.T) {
	mixedFleet(t)
	removeServices(t, "across")
	mustFleet(t, "create", "--name", "across", "--image", workload, "--node", "h2", "--cpus", "1", "--memory", "128m", "-e", "BALLAST_MB=16")
	tour(t, "across.1", "h3", []hop{
		{"h1", "20.10 → 28"},
		{"h4", "28 → 28"},
	})
	assert.Check(t, holderOf(t, "h4", "across.1"), "restored on Docker 28 into a holder")
	tour(t, "across.1", "h1", []hop{
		{"h3", "28 → 26.1"},
		{"h2", "26.1 → 20.10"},
	})
	assert.Check(t, holderOf(t, "h2", "across.1"), "a container from a holder keeps one")
	mustFleet(t, "rm", "across")
	for _, h := range []string{"h1", "h2", "h3", "h4"} {
		noTwinLeft(t, h, "across.1")
	}
}

// A container made on Docker 28 (a network namespace of its own) moves to
// 20.10 as any other, and back into a holder.
func TestEnginesMigrateFromDocker28(t *testing.T) {
	mixedFleet(t)
	removeServices(t, "from28")
	mustFleet(t, "create", "--name", "from28", "--image", workload, "--node", "h4", "--cpus", "1", "--memory", "128m", "-e", "BALLAST_MB=16")
	tour(t, "from28.1", "h3", []hop{{"h2", "28 → 20.10"}})
	assert.Check(t, !holderOf(t, "h2", "from28.1"), "restored on 20.10 with a namespace of its own")
	tour(t, "from28.1", "h3", []hop{{"h4", "20.10 → 28"}})
	assert.Check(t, holderOf(t, "h4", "from28.1"))
}

// On Docker 28 create, resize, scale and rm work as anywhere.
func TestEnginesDocker28(t *testing.T) {
	mixedFleet(t)
	removeServices(t, "on28")
	// No exclusive core: h4 has two, one of which stays shared, and on28
	// scales to two replicas there (exclusive cores on Docker 28 are
	// TestEnginesMigrateFromDocker28's).
	mustFleet(t, "create", "--name", "on28", "--image", workload, "--node", "h4", "--memory", "128m")
	mustFleet(t, "resize", "on28.1", "--memory", "192m")
	c, ok := containerOn(t, "on28.1")
	assert.Assert(t, ok)
	assert.Check(t, is.Equal(c.Host, "h4"))
	assert.Check(t, is.Equal(c.HostConfig.Memory, int64(192<<20)))
	mustFleet(t, "scale", "on28=2")
	assert.Check(t, is.Len(ofService(engineContainers(t), "on28"), 2))
	mustFleet(t, "rm", "on28")
	assert.Check(t, is.Len(ofService(engineContainers(t), "on28"), 0))
}

// A migration from a holder that fails after the freeze (the link to the
// destination cut mid-transfer; not the manager's, whose relay carries the
// command) leaves the container running in its holder, with its address
// and state, and nothing on the destination.
func TestEnginesRollbackFromHolder(t *testing.T) {
	mixedFleet(t)
	removeServices(t, "hold")
	mustFleet(t, "create", "--name", "hold", "--image", workload, "--node", "h2", "--cpus", "1", "--memory", "1g", "-e", "BALLAST_MB=512")
	mustFleet(t, "migrate", "hold.1", "--to", "h4")
	assert.Assert(t, holderOf(t, "h4", "hold.1"))
	ip := fleetIP(t, "hold.1")
	st0 := ask(t, "h2", ip)
	cut := func(op string) {
		run(t, "iptables", op, "FORWARD", "-s", hostAddr("h4"), "-d", hostAddr("h3"), "-j", "DROP")
		run(t, "iptables", op, "FORWARD", "-s", hostAddr("h3"), "-d", hostAddr("h4"), "-j", "DROP")
	}
	t.Cleanup(func() { cut("-D") })
	r := migrateWith(t, []string{"hold.1", "--to", "h3"}, "transfer: ", func() { cut("-I") })
	cut("-D")
	t.Log(r.Stderr)
	assert.Check(t, is.Equal(r.Code, 1), r.String())
	assert.Check(t, is.Contains(r.Stderr, "runs on h4 again with its state"))
	c, ok := containerOn(t, "hold.1")
	assert.Assert(t, ok)
	assert.Check(t, is.Equal(c.Host, "h4"))
	assert.Check(t, holderOf(t, "h4", "hold.1"))
	st := ask(t, "h2", ip)
	assert.Check(t, st.Counter >= st0.Counter)
	assert.Check(t, is.Equal(st.Birth, st0.Birth))
	assert.Check(t, st.BallastOK != nil && *st.BallastOK)
	mustFleet(t, "rm", "hold")
}
