//go:build e2e

package e2e

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// engineConfig is the bytes of host h's engine configuration file.
func engineConfig(t *testing.T, h string) string {
	t.Helper()
	b, err := os.ReadFile("/run/fsim/" + h + "/daemon.json")
	assert.NilError(t, err)
	return string(b)
}

// guardOn turns the fleet's guard on, and off again when the test ends,
// checking that every engine's configuration is then as it was; it returns
// those configurations.
func guardOn(t *testing.T) map[string]string {
	t.Helper()
	before := map[string]string{}
	for _, h := range fleetHosts(t) {
		before[h] = engineConfig(t, h)
	}
	t.Cleanup(func() {
		initFleet(t)
		mustFleet(t, "init", "--guard=false")
		for h, b := range before {
			assert.Check(t, is.Equal(engineConfig(t, h), b), "%s: the engine's configuration after --guard=false", h)
		}
	})
	initFleet(t)
	out := mustFleet(t, "init", "--guard")
	assert.Check(t, is.Contains(out, "guard: on"))
	for h := range before {
		assert.Check(t, is.Contains(engineConfig(t, h), `"fleet-agent:latest"`), h)
	}
	return before
}

// agentPid is the pid of host h's agent process.
func agentPid(t *testing.T, h string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	assert.NilError(t, err)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		env, _ := os.ReadFile("/proc/" + e.Name() + "/environ")
		if strings.TrimSpace(string(comm)) == "fleet-agent" && strings.Contains("\x00"+string(env), "\x00FLEET_NODE="+h+"\x00") {
			return pid
		}
	}
	t.Fatalf("no agent process for %s", h)
	return 0
}

// timed runs docker against host h and says how long it took.
func timed(t *testing.T, h string, args ...string) (result, time.Duration) {
	t.Helper()
	start := time.Now()
	r := docker(t, h, args...)
	return r, time.Since(start)
}

// TestGuard: with --guard, each engine refuses what would break the fleet's
// promises, says which fleet container holds what was asked for, lets
// everything else through, keeps answering while its agent is killed, and
// --guard=false (or leave) gives its configuration back byte for byte.
func TestGuard(t *testing.T) {
	initFleet(t)
	removeServices(t, "gd")
	free := freeWorkers(t)
	assert.Assert(t, len(free) > 0, "a worker without exclusive containers")
	h := free[0]
	configs := guardOn(t)
	assert.Check(t, is.Contains(mustFleet(t, "describe", h), "on (the engine consults the agent"))

	mustFleet(t, "create", "--name", "gd", "--image", workload, "--cpus", "1", "--memory", "32m", "--node", h)
	core := ofService(engineContainers(t), "gd")[0].HostConfig.CpusetCpus
	docker(t, h, "rm", "-f", "gd-plain", "gd-pinned", "gd-ok")
	t.Cleanup(func() { docker(t, h, "rm", "-f", "gd-plain", "gd-pinned", "gd-ok") })
	mustDocker(t, h, "run", "-d", "--name", "gd-plain", workload)

	held := "core " + core + " of this node is held exclusively by fleet container gd.1"
	resize := "gd.1 is a fleet container: change its cores or memory with `docker fleet resize gd.1`"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "-d", "--name", "gd-pinned", "--cpuset-cpus", core, workload}, held},
		{[]string{"create", "--name", "gd-pinned", "--cpuset-cpus", "0-1", workload}, held},
		{[]string{"update", "--cpuset-cpus", core, "gd-plain"}, held},
		{[]string{"update", "--memory", "64m", "--memory-swap", "128m", "gd.1"}, resize},
		{[]string{"update", "--cpuset-cpus", core, "gd.1"}, resize},
	} {
		r := docker(t, h, tc.args...)
		assert.Check(t, r.Code != 0, "%v: %s", tc.args, r)
		assert.Check(t, is.Contains(r.Stderr, "authorization denied by plugin fleet-agent:latest: "+tc.want), "%v", tc.args)
	}
	assert.Check(t, docker(t, h, "inspect", "gd-pinned").Code != 0, "a refused create made nothing")
	gd := ofService(engineContainers(t), "gd")[0]
	assert.Check(t, is.Equal(gd.HostConfig.Memory, int64(32<<20)), "a refused update changed nothing")

	// Everything else passes untouched.
	mustDocker(t, h, "run", "-d", "--name", "gd-ok", workload)
	assert.Check(t, is.Contains(mustDocker(t, h, "ps"), "gd-ok"))
	mustDocker(t, h, "logs", "gd.1")
	mustDocker(t, h, "update", "--memory", "64m", "--memory-swap", "128m", "gd-plain")
	mustDocker(t, h, "rm", "-f", "gd-ok")
	mustFleet(t, "resize", "gd.1", "--memory", "48m")

	// The agent killed: the engine still answers within seconds, and its
	// agent is back (the engine restarts it) with the guard on.
	assert.NilError(t, syscall.Kill(agentPid(t, h), syscall.SIGKILL))
	r, took := timed(t, h, "ps")
	assert.Check(t, r.Code == 0, r.String())
	t.Logf("docker ps while the agent was killed: %s", took)
	assert.Check(t, took < 20*time.Second, "docker ps took %s", took)
	r, took = timed(t, h, "run", "-d", "--name", "gd-ok", workload)
	assert.Check(t, r.Code == 0, r.String())
	t.Logf("docker run while the agent was killed: %s", took)
	assert.Check(t, took < 20*time.Second, "docker run took %s", took)
	// Until the guard answers again the engine itself refuses this update
	// (a memory above the swap limit), so waiting changes nothing.
	var again result
	for range 60 {
		if again = docker(t, h, "update", "--memory", "96m", "gd.1"); strings.Contains(again.Stderr, "authorization denied") {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	assert.Check(t, is.Contains(again.Stderr, resize), "the agent back, the guard refuses again: %s", again)

	// A plugin disabled by hand leaves the engine's file first (an engine
	// must never start naming a disabled plugin), and is back on enable.
	mustDocker(t, h, "plugin", "disable", "-f", "fleet-agent:latest")
	assert.Check(t, !strings.Contains(engineConfig(t, h), "fleet-agent"), "disabled, the engine's file still names it")
	mustDocker(t, h, "ps")
	mustDocker(t, h, "plugin", "enable", "fleet-agent:latest")
	for range 60 {
		if strings.Contains(mustFleet(t, "describe", h), "on (the engine consults the agent") {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	assert.Check(t, is.Contains(mustFleet(t, "describe", h), "on (the engine consults the agent"))
	assert.Check(t, is.Contains(docker(t, h, "update", "--cpuset-cpus", core, "gd-plain").Stderr, held))

	// Leaving the fleet takes the guard off first: the engine's file as it
	// was, and an engine that serves everything.
	mustFleet(t, "rm", "gd")
	mustFleet(t, "leave", h)
	assert.Check(t, is.Equal(engineConfig(t, h), configs[h]), "%s: the engine's configuration after leave", h)
	mustDocker(t, h, "run", "-d", "--name", "gd-pinned", "--cpuset-cpus", core, workload)
	mustDocker(t, h, "ps")
}
