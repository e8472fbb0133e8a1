//go:build e2e && faults

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

// warmSubject creates service svc, checkpointed every 5 s, with one
// replica on node, and waits for its first checkpoint on a standby.
func warmSubject(t *testing.T, svc, node string) (name, ip string) {
	t.Helper()
	removeServices(t, svc)
	t.Cleanup(func() { removeServices(t, svc) })
	mustFleet(t, "create", "--name", svc, "--image", workload, "--node", node, "--memory", "128m",
		"-e", "BALLAST_MB=16", "--checkpoint-every", "5s")
	name = svc + ".1"
	waitCheckpoint(t, name, 0)
	return name, fleetIP(t, name)
}

// runsOn waits until the workload at ip answers from h with its counter
// going on (not frozen).
func runsOn(t *testing.T, h, ip string) {
	t.Helper()
	a := ask(t, h, ip)
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if b := ask(t, h, ip); b.Counter > a.Counter {
			return poll.Success()
		}
		return poll.Continue("the counter at %s stands still: frozen?", ip)
	}, poll.WithTimeout(30*time.Second), poll.WithDelay(time.Second))
}

// noCheckpointLeftovers checks node h keeps no marker of a frozen
// container and no unsent checkpoint. The next checkpoint, every few
// seconds, has its own for a moment: a leftover is what is still there
// after every moment of 15 s (CI: the check once met the marker and images
// of a checkpoint under way).
func noCheckpointLeftovers(t *testing.T, h string) {
	t.Helper()
	root := filepath.Join("/var/lib/fsim", h, "docker", "fleet")
	var left []string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		left = nil
		for _, d := range []string{"frozen", "outgoing"} {
			entries, _ := os.ReadDir(filepath.Join(root, d))
			for _, e := range entries {
				left = append(left, filepath.Join(d, e.Name()))
			}
		}
		shm, _ := filepath.Glob("/dev/shm/fleet-" + h + "-*-cp*")
		left = append(left, shm...)
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	assert.Check(t, is.Len(left, 0), "%s keeps a frozen marker, an unsent checkpoint or checkpoint images: %v", h, left)
}

// TestFaultsBackgroundCheckpoint: an agent that dies while its container
// is frozen for a background checkpoint thaws it when it is back; a
// checkpoint that fails on its way to the standby leaves the container
// running and the standby's older copy whole.
func TestFaultsBackgroundCheckpoint(t *testing.T) {
	initFleet(t)
	name, ip := warmSubject(t, "fltwarm", "h2")
	cp := checkpointOf(t, name)

	t.Run("agent killed while frozen", func(t *testing.T) {
		setFaults(t, "h2", "checkpoint:frozen exit")
		poll.WaitOn(t, func(poll.LogT) poll.Result {
			b, _ := os.ReadFile("/run/fsim/h2/dockerd.log")
			if strings.Contains(string(b), "fault injection: exit at checkpoint:frozen") {
				return poll.Success()
			}
			return poll.Continue("no checkpoint reached its freeze yet")
		}, poll.WithTimeout(time.Minute), poll.WithDelay(500*time.Millisecond))
		clearFaults("h2")
		waitAgent(t, "h2")
		runsOn(t, "h1", ip)
		noCheckpointLeftovers(t, "h2")
		// And checkpoints go on.
		cp = waitCheckpoint(t, name, 0)
	})

	t.Run("sending fails", func(t *testing.T) {
		standby := cp.Standby
		before := standbyCopies(t, standby, name)
		assert.Assert(t, is.Len(before, 1), "%s holds no copy of %s", standby, name)
		setFaults(t, "h2", "checkpoint:sending fail")
		poll.WaitOn(t, func(poll.LogT) poll.Result {
			if c := checkpointOf(t, name); strings.Contains(c.Error, "injected fault at checkpoint:sending") {
				return poll.Success()
			}
			return poll.Continue("no checkpoint failed on its way yet")
		}, poll.WithTimeout(time.Minute), poll.WithDelay(500*time.Millisecond))
		runsOn(t, "h1", ip)
		after := standbyCopies(t, standby, name)
		assert.Check(t, is.DeepEqual(after, before), "the standby's copy is the older one, whole")
		clearFaults("h2")
		noCheckpointLeftovers(t, "h2")
		c := waitCheckpoint(t, name, checkpointOf(t, name).Seq)
		assert.Check(t, is.Equal(c.Error, ""), "the next checkpoint works: %+v", c)
	})
}

// standbyCopies lists the copies of name that node h keeps (their
// directories under its data root).
func standbyCopies(t *testing.T, h, name string) []string {
	t.Helper()
	meta, err := os.ReadFile(filepath.Join("/var/lib/fsim", h, "docker", "fleet", "standby", name, "newest", "meta.json"))
	if err != nil {
		return nil
	}
	return []string{string(meta)}
}

// TestFaultsWarmRestoreFails: the standby's restore fails (injected), so
// the dead node's container is made afresh instead, once, and the standby
// keeps nothing of the failed restore.
func TestFaultsWarmRestoreFails(t *testing.T) {
	initFleet(t)
	setFailover(t, testGrace.String())
	t.Cleanup(func() { setFailover(t, "30s") })
	name, ip := warmSubject(t, "fltrest", "h3")
	was := ask(t, manager, ip)
	standby := checkpointOf(t, name).Standby
	setFaults(t, standby, "standby:restoring fail")
	before := describeFailover(t)
	sim(t, "stop-engine", "h3")
	t.Cleanup(func() { sim(t, "start-engine", "h3"); waitBack(t, "h3") })
	where := waitRunning(t, name, "h1", "h2")
	after := describeFailover(t)
	assert.Check(t, is.Equal(after.RelocationsWarm, before.RelocationsWarm), "not warm")
	assert.Check(t, is.Equal(after.RelocationsCold, before.RelocationsCold+1), "cold, once")
	now := ask(t, manager, fleetIP(t, name))
	assert.Check(t, now.Birth != was.Birth, "made afresh: a new first-start file")
	copies := 0
	for _, c := range liveContainers(t, "h1", "h2") {
		if c.Name == name {
			copies++
		}
	}
	assert.Check(t, is.Equal(copies, 1), "one copy, on %s", where.Host)
	shm, _ := filepath.Glob("/dev/shm/fleet-" + standby + "-*-in")
	assert.Check(t, is.Len(shm, 0), "%s keeps the failed restore's images: %v", standby, shm)
	clearFaults(standby)
}
