//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// TestMigrateProgress: on a terminal (a tmux pane of 120 columns) a
// migration shows docker pull's progress, a line a phase updated in place
// with the transfer's bar, and ends with its summary; without one, plain
// lines and no escape code; with -q, only the summary.
func TestMigrateProgress(t *testing.T) {
	_, err := exec.LookPath("tmux")
	assert.NilError(t, err, "tmux is missing (test/sim/install-deps.sh installs it)")
	initFleet(t)
	removeServices(t, "tty")
	mustFleet(t, "create", "--name", "tty", "--image", workload, "--node", "h2", "--memory", "256m", "-e", "BALLAST_MB=128")

	// A tmux server of its own, started with this test's environment
	// (the docker CLI's contexts and plugins).
	sock := "fleet-e2e-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	tmux := func(args ...string) result {
		t.Helper()
		return run(t, "tmux", append([]string{"-L", sock}, args...)...)
	}
	t.Cleanup(func() { tmux("kill-server") })
	exit := filepath.Join(t.TempDir(), "exit")
	// The pane stays open once the migration ends, for capture-pane.
	script := "docker --context " + manager + " fleet migrate tty.1 --to h3; echo $? >" + exit + ".tmp; mv " + exit + ".tmp " + exit + "; exec sleep 600"
	r := tmux("new-session", "-d", "-s", "tty", "-x", "120", "-y", "30", "sh", "-c", script)
	assert.Assert(t, r.Code == 0, "tmux new-session\n%s", r)
	var code []byte
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if code, err = os.ReadFile(exit); err == nil {
			break
		}
		assert.Assert(t, time.Now().Before(deadline), "the migration did not end within 3 minutes:\n%s", tmux("capture-pane", "-p", "-t", "tty").Stdout)
	}
	screen := tmux("capture-pane", "-p", "-t", "tty").Stdout
	t.Logf("the terminal:\n%s", screen)
	assert.Check(t, is.Equal(strings.TrimSpace(string(code)), "0"))

	var lines []string
	for _, l := range strings.Split(strings.TrimRight(screen, "\n "), "\n") {
		lines = append(lines, strings.TrimRight(l, " "))
	}
	// A line a phase, updated in place: the transfer's is there once,
	// its bar full.
	transfer := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "transfer: ") {
			transfer++
			assert.Check(t, is.Contains(l, "[==="), "no bar: %q", l)
			assert.Check(t, is.Contains(l, "==>]"), "the bar is not full: %q", l)
		}
	}
	assert.Check(t, is.Equal(transfer, 1), "the transfer's line is not updated in place")
	assert.Check(t, is.Contains(screen, "start: migration "))
	assert.Check(t, is.Contains(screen, "checkpoint: checkpointed in "))
	// It ends with the summary.
	assert.Assert(t, len(lines) >= 2)
	assert.Check(t, strings.HasPrefix(lines[len(lines)-2], "migrated tty.1 from h2 to h3: downtime "), "%q", lines[len(lines)-2])
	assert.Check(t, strings.HasPrefix(lines[len(lines)-1], "  frozen window: dump "), "%q", lines[len(lines)-1])

	// Not a terminal: plain lines, never an escape code; the summary on
	// stdout.
	r = fleetCmd(t, "migrate", "tty.1", "--to", "h2")
	assert.Assert(t, r.Code == 0, r.String())
	assert.Check(t, !strings.Contains(r.Stderr, "\x1b"), "escape codes: %q", r.Stderr)
	assert.Check(t, is.Contains(r.Stderr, "\ntransfer: streaming to h2\n"))
	assert.Check(t, is.Regexp(`\ntransfer: \S+ (of \S+ )?sent`, r.Stderr))
	assert.Check(t, is.Contains(r.Stdout, "migrated tty.1 from h3 to h2: downtime "))

	// -q: the summary only.
	r = fleetCmd(t, "migrate", "tty.1", "--to", "h3", "-q")
	assert.Assert(t, r.Code == 0, r.String())
	assert.Check(t, is.Equal(r.Stderr, ""))
	assert.Check(t, strings.HasPrefix(r.Stdout, "migrated tty.1 from h2 to h3: downtime "), r.Stdout)
}

// TestCompletionListsContainers: in bash with docker's completion script
// (a tmux pane), TAB after "docker fleet migrate" lists the fleet's
// containers, as the plugin answers docker's __complete.
func TestCompletionListsContainers(t *testing.T) {
	_, err := exec.LookPath("tmux")
	assert.NilError(t, err, "tmux is missing (test/sim/install-deps.sh installs it)")
	const bashCompletion, dockerCompletion = "/usr/share/bash-completion/bash_completion", "/usr/share/bash-completion/completions/docker"
	for _, f := range []string{bashCompletion, dockerCompletion} {
		_, err := os.Stat(f)
		assert.NilError(t, err, "test/sim/install-deps.sh installs bash-completion; docker.io brings docker's script")
	}
	initFleet(t)
	removeServices(t, "cmpl")
	mustFleet(t, "create", "--name", "cmpl", "--image", workload, "--replicas", "2", "--memory", "32m")

	sock := "fleet-e2e-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	tmux := func(args ...string) result {
		t.Helper()
		return run(t, "tmux", append([]string{"-L", sock}, args...)...)
	}
	t.Cleanup(func() { tmux("kill-server") })
	r := tmux("new-session", "-d", "-s", "cmpl", "-x", "160", "-y", "30", "env", "DOCKER_CONTEXT="+manager, "bash", "--norc", "--noprofile")
	assert.Assert(t, r.Code == 0, "tmux new-session\n%s", r)
	tmux("send-keys", "-t", "cmpl", ". "+bashCompletion+"; . "+dockerCompletion+"; clear", "Enter")
	time.Sleep(time.Second)
	// Two names share "cmpl.": a first TAB rings, a second lists them
	// (each asks the plugin, which asks the agents: a moment each).
	tmux("send-keys", "-t", "cmpl", "docker fleet migrate cmpl.", "Tab")
	var screen string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		tmux("send-keys", "-t", "cmpl", "Tab")
		screen = tmux("capture-pane", "-p", "-t", "cmpl").Stdout
		if strings.Contains(screen, "cmpl.1") && strings.Contains(screen, "cmpl.2") {
			break
		}
	}
	t.Logf("the terminal:\n%s", screen)
	assert.Check(t, is.Contains(screen, "cmpl.1"))
	assert.Check(t, is.Contains(screen, "cmpl.2"))
}
