package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker-fleet/fleet/shared/api"
)

// scaleStep is one fleet size's figures.
type scaleStep struct {
	nodes             int
	initPerNode       time.Duration
	create, createCPU time.Duration // wall, and the CLI's own CPU time
	describe, dryRun  time.Duration
	downtime          float64
	scaleDown         time.Duration
	moves             int
}

// scaleBench grows one fleet through the sizes given (the simulator must
// run as many hosts as the largest), and at each measures init per node
// added, a create of replicas small replicas, describe, rebalance
// --dry-run, one migration while they run, and a scale back to 0; then it
// prints how each grows.
func scaleBench(sizes []int, replicas int) {
	var steps []scaleStep
	have := 1
	mustDocker(client, "fleet", "init")
	_, _ = dockerErr(client, "fleet", "rm", "scl")
	for _, n := range sizes {
		st := scaleStep{nodes: n}
		args := []string{"fleet", "init"}
		for h := have + 1; h <= n; h++ {
			args = append(args, "--worker", "h"+strconv.Itoa(h))
		}
		start := time.Now()
		mustDocker(client, args...)
		if n > have {
			st.initPerNode = time.Since(start) / time.Duration(n-have)
		}
		have = n

		st.create, st.createCPU = timedCPU("fleet", "create", "--name", "scl", "--image", image, "--replicas", strconv.Itoa(replicas), "--memory", "16m", "-e", "BALLAST_MB=1")
		var ds []time.Duration
		for range 5 {
			d, _ := timedCPU("fleet", "describe")
			ds = append(ds, d)
		}
		slices.Sort(ds)
		st.describe = ds[len(ds)/2]
		start = time.Now()
		out := mustDockerOut(client, "fleet", "rebalance", "--dry-run", "--format", "json")
		st.dryRun = time.Since(start)
		var plan struct {
			Moves []json.RawMessage `json:"moves"`
		}
		if err := json.Unmarshal([]byte(out), &plan); err == nil {
			st.moves = len(plan.Moves)
		}
		var res api.MigrateResult
		if err := json.Unmarshal([]byte(mustDockerOut(client, "fleet", "migrate", "scl.1", "--format", "json")), &res); err != nil {
			fail("migrate scl.1: %v", err)
		}
		st.downtime = res.Downtime
		start = time.Now()
		mustDocker(client, "fleet", "scale", "scl=0")
		st.scaleDown = time.Since(start)
		mustDocker(client, "fleet", "rm", "scl")
		steps = append(steps, st)
	}
	fmt.Printf("scale: one fleet grown through %v nodes (this machine's 2 cores shared by all), %d replicas of 16 MiB each\n", sizes, replicas)
	fmt.Printf("%-6s %-14s %-22s %-10s %-14s %-10s %s\n", "NODES", "INIT/NODE", "CREATE (CLI CPU)", "DESCRIBE", "REBALANCE -n", "MIGRATION", "SCALE TO 0")
	for _, s := range steps {
		fmt.Printf("%-6d %-14s %-22s %-10s %-14s %-10s %s\n", s.nodes, round(s.initPerNode),
			fmt.Sprintf("%s (%s)", round(s.create), round(s.createCPU)), round(s.describe),
			fmt.Sprintf("%s, %d moves", round(s.dryRun), s.moves), fmt.Sprintf("%.2fs", s.downtime), round(s.scaleDown))
	}
	if len(steps) > 1 {
		a, b := steps[0], steps[len(steps)-1]
		k := float64(b.nodes) / float64(a.nodes)
		fmt.Printf("growth %d→%d nodes (x%.0f): describe x%.1f, create x%.1f, rebalance --dry-run x%.1f, migration downtime x%.1f\n",
			a.nodes, b.nodes, k, ratio(b.describe, a.describe), ratio(b.create, a.create), ratio(b.dryRun, a.dryRun), b.downtime/a.downtime)
	}
	fmt.Println()
}

// timedCPU runs docker against the client context and says how long it
// took and how much CPU the CLI itself used (the rest is waiting on the
// engines and agents).
func timedCPU(args ...string) (time.Duration, time.Duration) {
	cmd := exec.Command("docker", append([]string{"--context", client}, args...)...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		fail("docker %v: %v\n%s", args, err, out)
	}
	return time.Since(start), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

func round(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

// parseSizes reads "3,6,12".
func parseSizes(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fail("-nodes %q: a list of node counts such as 3,6,12", s)
		}
		out = append(out, n)
	}
	return out
}
