//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/cpuset"
)

// allowedCPUs is the cores the kernel lets container name's process on
// host h run on (Cpus_allowed_list of /proc/PID/status).
func allowedCPUs(t *testing.T, h, name string) cpuset.Set {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(mustDocker(t, h, "inspect", "-f", "{{.State.Pid}}", name)))
	assert.NilError(t, err)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	assert.NilError(t, err)
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			set, err := cpuset.Parse(strings.TrimSpace(v))
			assert.NilError(t, err)
			return set
		}
	}
	t.Fatalf("no Cpus_allowed_list for %s on %s", name, h)
	return nil
}

// waitAllowed waits until container name on host h may run on want only.
func waitAllowed(t *testing.T, h, name string, want cpuset.Set) {
	t.Helper()
	var got cpuset.Set
	for range 50 {
		if got = allowedCPUs(t, h, name); got.String() == want.String() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s on %s runs on cores %s, want %s", name, h, got, want)
}

// hostCores are host h's cores; freeWorkers the workers none of whose
// cores a fleet container holds.
func hostCores(t *testing.T, h string) cpuset.Set {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(mustDocker(t, h, "info", "-f", "{{.NCPU}}")))
	assert.NilError(t, err)
	set, err := cpuset.Parse(fmt.Sprintf("0-%d", n-1))
	assert.NilError(t, err)
	return set
}

func freeWorkers(t *testing.T) []string {
	t.Helper()
	busy := map[string]bool{}
	for _, c := range engineContainers(t) {
		if c.Config.Labels["com.docker.fleet.exclusive"] == "true" {
			busy[c.Host] = true
		}
	}
	var out []string
	for _, w := range workers {
		if !busy[w] {
			out = append(out, w)
		}
	}
	return out
}

// TestSharedPool: a container started by hand with no cpuset, and a fleet
// container without --cpus, run only on the cores no fleet container holds
// exclusively, through create, resize, a migration away and rm.
func TestSharedPool(t *testing.T) {
	initFleet(t)
	removeServices(t, "pex", "psh")
	free := freeWorkers(t)
	assert.Assert(t, len(free) == 2, "both workers must be free of exclusive containers: %v", free)
	x, y := free[0], free[1]
	all := hostCores(t, x)
	for _, h := range free {
		docker(t, h, "rm", "-f", "pool-plain")
		mustDocker(t, h, "run", "-d", "--name", "pool-plain", workload)
		t.Cleanup(func() { docker(t, h, "rm", "-f", "pool-plain") })
		waitAllowed(t, h, "pool-plain", all)
	}

	// An exclusive container on x: the plain one leaves its core.
	mustFleet(t, "create", "--name", "pex", "--image", workload, "--cpus", "1", "--memory", "32m", "--node", x)
	pex := ofService(engineContainers(t), "pex")[0]
	held, err := cpuset.Parse(pex.HostConfig.CpusetCpus)
	assert.NilError(t, err)
	shared := all.Minus(held)
	waitAllowed(t, x, "pool-plain", shared)
	assert.Check(t, is.Contains(mustFleet(t, "describe", x), "cores "+shared.String()+" (every container without exclusive cores runs there)"))

	// A fleet container without exclusive cores shares the same cores.
	mustFleet(t, "create", "--name", "psh", "--image", workload, "--memory", "32m", "--node", x)
	waitAllowed(t, x, "psh.1", shared)

	// The last shared core is refused, and the refusal says why.
	r := fleetCmd(t, "create", "--name", "pex2", "--image", workload, "--cpus", "1", "--node", x)
	assert.Check(t, r.Code != 0)
	assert.Check(t, is.Contains(r.Stderr, "can be held exclusively ("+strconv.Itoa(1)+" stays shared)"), r)
	r = fleetCmd(t, "resize", "pex.1", "--cpus", strconv.Itoa(len(all)))
	assert.Check(t, r.Code != 0)
	assert.Check(t, is.Contains(r.Stderr, "shared"), r)

	// Resized onto the other core: the plain one follows.
	other := shared[:1]
	mustFleet(t, "resize", "pex.1", "--cpuset-cpus", other.String())
	waitAllowed(t, x, "pool-plain", all.Minus(other))
	waitAllowed(t, x, "psh.1", all.Minus(other))

	// Migrated away to y: x's containers have every core again, y's give
	// one up.
	mustFleet(t, "migrate", "pex.1", "--to", y)
	waitAllowed(t, x, "pool-plain", all)
	waitAllowed(t, x, "psh.1", all)
	pex = ofService(engineContainers(t), "pex")[0]
	assert.Check(t, is.Equal(pex.Host, y))
	held, err = cpuset.Parse(pex.HostConfig.CpusetCpus)
	assert.NilError(t, err)
	waitAllowed(t, y, "pool-plain", all.Minus(held))

	// Removed: y's plain container may use every core again.
	mustFleet(t, "rm", "pex")
	waitAllowed(t, y, "pool-plain", all)
}
