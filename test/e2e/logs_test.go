//go:build e2e

package e2e

import (
	"bufio"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// tickLine is a line of the workload's LOG_EVERY mode ("… tick N").
var tickLine = regexp.MustCompile(`tick (\d+)$`)

// tickNumbers are the tick numbers in out, in order.
func tickNumbers(out string) []int {
	var ns []int
	for _, l := range strings.Split(out, "\n") {
		if m := tickLine.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			ns = append(ns, n)
		}
	}
	return ns
}

// assertTicks checks that ticks only go up, with no gap of more than a few
// (a line in flight in the container's pipe as it is frozen may be lost).
func assertTicks(t *testing.T, ns []int) {
	t.Helper()
	for i := 1; i < len(ns); i++ {
		assert.Check(t, ns[i] > ns[i-1], "tick %d after tick %d: %v", ns[i], ns[i-1], ns)
		assert.Check(t, ns[i]-ns[i-1] <= 3, "ticks %d to %d missing: %v", ns[i-1]+1, ns[i]-1, ns)
	}
}

// TestLogsAcrossMigration: after a migration, docker fleet logs shows the
// container's whole log: the part its first node kept when its copy there
// was removed, then the live log of its new node.
func TestLogsAcrossMigration(t *testing.T) {
	initFleet(t)
	removeServices(t, "logs")
	mustFleet(t, "create", "--name", "logs", "--image", workload, "--node", "h2", "-e", "BALLAST_MB=4", "-e", "LOG_EVERY=200ms")
	time.Sleep(2 * time.Second)
	mustFleet(t, "migrate", "logs.1", "--to", "h3")
	time.Sleep(2 * time.Second)

	r := fleetCmd(t, "logs", "logs.1")
	assert.Assert(t, r.Code == 0, r.String())
	ns := tickNumbers(r.Stdout)
	t.Logf("ticks: %v", ns)
	assert.Assert(t, len(ns) >= 15, "too few ticks: %s", r)
	assert.Check(t, is.Equal(ns[0], 1), "the first tick, logged on h2")
	assertTicks(t, ns)
	// The start line went to stderr, on h2: its kept part keeps streams apart.
	assert.Check(t, is.Contains(r.Stderr, "workload: 4 MB ballast"))
	assert.Check(t, !strings.Contains(r.Stdout, "workload: 4 MB ballast"))

	// Both nodes: h3's own log starts after the migration, h2 has no
	// container left.
	c, ok := containerOn(t, "logs.1")
	assert.Assert(t, ok)
	assert.Check(t, is.Equal(c.Host, "h3"))
	live := tickNumbers(mustDocker(t, "h3", "logs", "logs.1"))
	assert.Assert(t, len(live) > 0)
	assert.Check(t, live[0] > 5, "h3's engine has the ticks from the migration on: %v", live)
	assert.Check(t, live[0] <= ns[len(ns)-1])
	assert.Check(t, docker(t, "h2", "inspect", "logs.1").Code != 0, "the source copy is removed")

	// --tail and -t on the merged log.
	r = fleetCmd(t, "logs", "--tail", "3", "-t", "logs.1")
	assert.Assert(t, r.Code == 0, r.String())
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	assert.Assert(t, is.Len(lines, 3), r.Stdout)
	for _, l := range lines {
		ts, _, _ := strings.Cut(l, " ")
		_, err := time.Parse(time.RFC3339Nano, ts)
		assert.Check(t, err, l)
	}
	tail := tickNumbers(r.Stdout)
	assert.Check(t, is.Len(tail, 3))
	assert.Check(t, tail[2] >= ns[len(ns)-1])

	// --since from before the migration's end reaches into h2's part.
	r = fleetCmd(t, "logs", "--since", "1h", "logs.1")
	assert.Assert(t, r.Code == 0, r.String())
	assert.Check(t, is.Equal(tickNumbers(r.Stdout)[0], 1))

	// rm takes the kept part with it: a new container of the name starts
	// a new log.
	mustFleet(t, "rm", "logs")
	assert.Check(t, fleetCmd(t, "logs", "logs.1").Code != 0, "no container logs.1 any more")
	mustFleet(t, "create", "--name", "logs", "--image", workload, "--node", "h2", "-e", "BALLAST_MB=4", "-e", "LOG_EVERY=200ms")
	time.Sleep(time.Second)
	again := tickNumbers(mustFleet(t, "logs", "logs.1"))
	assert.Assert(t, len(again) > 0)
	assert.Check(t, again[len(again)-1] < 10, "the old container's ticks are gone: %v", again)
}

// TestLogsFollowAcrossMigration: logs -f started before a migration goes on
// on the destination when the source's copy is removed, with no line twice
// and none missing, and ends (exit 0) when the container is removed.
func TestLogsFollowAcrossMigration(t *testing.T) {
	initFleet(t)
	removeServices(t, "logsf")
	mustFleet(t, "create", "--name", "logsf", "--image", workload, "--node", "h2", "-e", "BALLAST_MB=4", "-e", "LOG_EVERY=200ms")

	cmd := exec.Command("docker", "--context", manager, "fleet", "logs", "-f", "logsf.1")
	out, err := cmd.StdoutPipe()
	assert.NilError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	assert.NilError(t, cmd.Start())
	exited := make(chan error, 1)
	var (
		mu  sync.Mutex
		ns  []int
		got = make(chan int, 1000)
	)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := tickLine.FindStringSubmatch(sc.Text()); m != nil {
				n, _ := strconv.Atoi(m[1])
				mu.Lock()
				ns = append(ns, n)
				mu.Unlock()
				select {
				case got <- n:
				default: // nobody waits for it: ns has it
				}
			}
		}
		exited <- cmd.Wait()
	}()
	// A no-op once it exited.
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	// waitTick waits until a tick of at least n is printed.
	waitTick := func(n int, what string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case m := <-got:
				if m >= n {
					return
				}
			case <-deadline:
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("%s: no tick %d within 30s; ticks %v; stderr %s", what, n, ns, stderr.String())
			}
		}
	}
	waitTick(5, "before the migration")

	mustFleet(t, "migrate", "logsf.1", "--to", "h3")
	c, ok := containerOn(t, "logsf.1")
	assert.Assert(t, ok)
	assert.Assert(t, is.Equal(c.Host, "h3"))
	// The ticks h3 has logged so far are past what h2 had.
	live := tickNumbers(mustDocker(t, "h3", "logs", "logsf.1"))
	assert.Assert(t, len(live) > 0)
	waitTick(live[len(live)-1]+10, "after the migration")

	mu.Lock()
	t.Logf("ticks: %v", ns)
	assert.Check(t, is.Equal(ns[0], 1))
	assertTicks(t, ns)
	mu.Unlock()

	mustFleet(t, "rm", "logsf")
	select {
	case err := <-exited:
		assert.Check(t, err, "logs -f after rm: %s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("logs -f did not end within 30s of rm; stderr %s", stderr.String())
	}
}
