//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"

	"github.com/docker-fleet/fleet/shared/api"
)

// testGrace is the grace period the failover tests set.
const testGrace = 6 * time.Second

// failoverView is the failover part of `describe --format json`.
type failoverView struct {
	After           time.Duration `json:"after"`
	Failures        int           `json:"failures"`
	RelocationsCold int           `json:"relocationsCold"`
	RelocationsWarm int           `json:"relocationsWarm"`
	Down            []struct {
		Node string `json:"node"`
	} `json:"down"`
}

func describeFailover(t *testing.T) failoverView {
	t.Helper()
	var v struct {
		Failover failoverView `json:"failover"`
	}
	assert.NilError(t, json.Unmarshal([]byte(mustFleet(t, "describe", "--format", "json")), &v))
	return v.Failover
}

// setFailover runs init again with --failover-after.
func setFailover(t *testing.T, d string) {
	t.Helper()
	args := []string{"fleet", "init", "--subnet", subnet, "--failover-after", d}
	for _, w := range workers {
		args = append(args, "--worker", w)
	}
	r := docker(t, manager, args...)
	assert.Assert(t, r.Code == 0, "fleet init --failover-after %s\n%s", d, r)
}

// liveContainers are the fleet containers of the hosts whose engines run.
func liveContainers(t *testing.T, hosts ...string) []engineContainer {
	t.Helper()
	var out []engineContainer
	for _, h := range hosts {
		for _, c := range hostContainers(t, h) {
			c.Host, c.Name = h, strings.TrimPrefix(c.Name, "/")
			out = append(out, c)
		}
	}
	return out
}

// isolate cuts host h off from the other hosts; the returned function
// heals it.
func isolate(t *testing.T, h string) func() {
	t.Helper()
	var heals []func()
	for _, o := range fleetHostsBut(h) {
		heals = append(heals, cutLink(t, h, o, true))
	}
	return func() {
		for _, heal := range heals {
			heal()
		}
	}
}

func fleetHostsBut(h string) []string {
	var out []string
	for _, o := range append([]string{manager}, workers...) {
		if o != h {
			out = append(out, o)
		}
	}
	return out
}

// replicaOnH3 creates the service fo, one replica with an exclusive core,
// moved to h3 if it was placed elsewhere, and returns its name. h1 and h2
// keep a core to give it (one of each node's two stays shared).
func replicaOnH3(t *testing.T) string {
	t.Helper()
	removeServices(t, "fo")
	t.Cleanup(func() { sim(t, "start-engine", "h3"); waitBack(t, "h3"); removeServices(t, "fo") })
	mustFleet(t, "create", "--name", "fo", "--image", workload, "--cpus", "1", "-e", "BALLAST_MB=4")
	if c, ok := containerOn(t, "fo.1"); ok && c.Host != "h3" {
		mustFleet(t, "migrate", "fo.1", "--to", "h3")
	}
	c, ok := containerOn(t, "fo.1")
	assert.Assert(t, ok && c.Host == "h3", "fo.1 is not on h3")
	return "fo.1"
}

// TestFailoverRelocatesADeadNodesContainers loses h3 (its engine stopped,
// or its network cut off), sees its replica made anew elsewhere, then has
// h3 back and sees it keep no copy.
func TestFailoverRelocatesADeadNodesContainers(t *testing.T) {
	initFleet(t)
	setFailover(t, testGrace.String())
	t.Cleanup(func() { setFailover(t, "30s") })
	for _, tc := range []struct {
		name string
		// lose takes h3 away and returns what brings it back.
		lose func(t *testing.T) func()
	}{
		{"engine stopped", func(t *testing.T) func() {
			sim(t, "stop-engine", "h3")
			return func() { sim(t, "start-engine", "h3") }
		}},
		{"network cut off", func(t *testing.T) func() { return isolate(t, "h3") }},
	} {
		t.Run(tc.name, func(t *testing.T) { failover(t, tc.lose) })
	}
}

// warmOnH3 creates the service fw, checkpointed every few seconds, with
// its one replica on h3, and waits for its first checkpoint on a standby.
func warmOnH3(t *testing.T) (name, ip string) {
	t.Helper()
	removeServices(t, "fw")
	t.Cleanup(func() { removeServices(t, "fw") })
	mustFleet(t, "create", "--name", "fw", "--image", workload, "--node", "h3", "--memory", "128m",
		"-e", "BALLAST_MB=16", "--checkpoint-every", "5s")
	name = "fw.1"
	waitCheckpoint(t, name, 0)
	return name, fleetIP(t, name)
}

// checkpointOf reads a container's background checkpoints from describe.
func checkpointOf(t *testing.T, name string) api.CheckpointStatus {
	t.Helper()
	var v struct {
		Checkpoint *api.CheckpointStatus `json:"checkpoint"`
	}
	assert.NilError(t, json.Unmarshal([]byte(mustFleet(t, "describe", name, "--format", "json")), &v))
	assert.Assert(t, v.Checkpoint != nil, "%s has no background checkpoints", name)
	return *v.Checkpoint
}

// waitCheckpoint waits until a checkpoint of name newer than seq is whole
// on its standby node, and returns its status.
func waitCheckpoint(t *testing.T, name string, seq int) api.CheckpointStatus {
	t.Helper()
	var cp api.CheckpointStatus
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		cp = checkpointOf(t, name)
		if cp.Seq > seq && cp.Standby != "" && !cp.At.IsZero() {
			return poll.Success()
		}
		return poll.Continue("no checkpoint of %s after %d yet: %+v", name, seq, cp)
	}, poll.WithTimeout(time.Minute), poll.WithDelay(500*time.Millisecond))
	return cp
}

func failover(t *testing.T, lose func(t *testing.T) func()) {
	lost := replicaOnH3(t)
	warm, warmIP := warmOnH3(t)
	before := describeFailover(t)
	assert.Check(t, is.Equal(before.After, testGrace))
	// The workload's state before its next checkpoint: the warm copy
	// resumes at least there, with the same first-start file and ballast.
	cp := checkpointOf(t, warm)
	was := ask(t, manager, warmIP)
	cp = waitCheckpoint(t, warm, cp.Seq)
	t.Logf("%s: checkpoint %d on standby %s, frozen %.2fs, %d bytes", warm, cp.Seq, cp.Standby, cp.Frozen, cp.Bytes)

	const agentLog = "/run/fsim/h3/dockerd.log"
	logFrom := fileSize(t, agentLog)
	t0 := time.Now()
	back := lose(t)
	// The swarm takes a few seconds to call the node down, then the grace
	// runs; within 30 s more the replica must run elsewhere.
	where := waitRunning(t, lost, "h1", "h2")
	warmWhere := waitRunning(t, warm, "h1", "h2")
	took := time.Since(t0)
	t.Logf("%s relocated to %s and %s to %s %s after h3 was lost", lost, where.Host, warm, warmWhere.Host, took.Round(time.Second))
	assert.Check(t, took <= testGrace+30*time.Second, "relocated %s after the loss, past grace + 30 s", took)
	assert.Check(t, where.HostConfig.CpusetCpus != "", "relocated with its exclusive core")
	// Warm: restored on its standby from its checkpoint, at its address.
	assert.Check(t, is.Equal(warmWhere.Host, cp.Standby), "restored where its checkpoints went")
	assert.Check(t, is.Equal(fleetIP(t, warm), warmIP), "the same address")
	now := ask(t, manager, warmIP)
	t.Logf("%s: counter %d before its last checkpoint, %d after the warm relocation", warm, was.Counter, now.Counter)
	assert.Check(t, now.Counter >= was.Counter, "memory from the last checkpoint: counter %d, was %d before it", now.Counter, was.Counter)
	assert.Check(t, is.Equal(now.Birth, was.Birth), "the same first-start file: not started afresh")
	assert.Check(t, is.Equal(now.BallastSHA256, was.BallastSHA256))
	assert.Check(t, now.BallastOK != nil && *now.BallastOK, "ballast intact")
	after := describeFailover(t)
	assert.Check(t, is.Equal(after.Failures, before.Failures+1))
	assert.Check(t, is.Equal(after.RelocationsCold, before.RelocationsCold+1))
	assert.Check(t, is.Equal(after.RelocationsWarm, before.RelocationsWarm+1))
	assert.Check(t, is.Len(after.Down, 1))
	out := mustFleet(t, "describe")
	assert.Check(t, is.Contains(out, "Down:"))

	// The node comes back: its copy is removed, the relocated one stays
	// where it is.
	back()
	waitAgent(t, "h3")
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		for _, c := range hostContainers(t, "h3") {
			if name := strings.TrimPrefix(c.Name, "/"); name == lost || name == warm {
				return poll.Continue("h3 still has its copy of %s", name)
			}
		}
		if len(describeFailover(t).Down) > 0 {
			return poll.Continue("h3 is still recorded dead")
		}
		return poll.Success()
	}, poll.WithTimeout(time.Minute), poll.WithDelay(time.Second))
	// Removed from the swarm while dead (its addresses freed), h3 is a
	// fleet node again.
	nodes := swarmNodes(t)
	_, inSwarm := nodes["h3"]
	assert.Check(t, inSwarm, "h3 joined the swarm again: %v", nodes)
	waitAgent(t, "h3")
	for name, host := range map[string]string{lost: where.Host, warm: warmWhere.Host} {
		c, ok := containerOn(t, name)
		assert.Assert(t, ok)
		assert.Check(t, is.Equal(c.Host, host), "the relocated copy of %s stays", name)
		assert.Check(t, c.State.Running)
	}
	log, err := os.ReadFile(agentLog)
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(log[logFrom:]), "fenced: removed "+lost), "h3's agent says what it removed")
	assert.Check(t, is.Contains(string(log[logFrom:]), "fenced: removed "+warm), "h3's agent says what it removed")
	final := describeFailover(t)
	assert.Check(t, is.Equal(final.RelocationsCold, after.RelocationsCold), "nothing relocated twice")
	assert.Check(t, is.Equal(final.RelocationsWarm, after.RelocationsWarm), "nothing relocated twice")

	// The same story from `docker fleet events`.
	r := fleetCmd(t, "events", "--since", t0.Add(-time.Second).Format(time.RFC3339Nano), "--until", "0s", "--format", "json")
	assert.Assert(t, r.Code == 0, r.String())
	var story []string
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		var ev struct{ Type, Action, Node, Container, From, To string }
		assert.NilError(t, json.Unmarshal([]byte(line), &ev), line)
		story = append(story, strings.Join([]string{ev.Type, ev.Action, ev.Node, ev.Container, ev.From, ev.To}, " "))
	}
	assert.Check(t, is.DeepEqual(story, []string{
		"node down h3   ",
		"relocation cold  " + lost + " h3 " + where.Host,
		"relocation warm  " + warm + " h3 " + warmWhere.Host,
		"node up h3   ",
	}))
}

// waitBack waits until node h, lost and back, is a fleet node again: no
// longer held dead (fenced, and in the swarm again if the leader had
// removed it), its agent answering.
func waitBack(t *testing.T, h string) {
	t.Helper()
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		for _, d := range describeFailover(t).Down {
			if d.Node == h {
				return poll.Continue("%s is still held dead", h)
			}
		}
		if _, ok := swarmNodes(t)[h]; !ok {
			return poll.Continue("%s is not in the swarm again yet", h)
		}
		return poll.Success()
	}, poll.WithTimeout(2*time.Minute), poll.WithDelay(time.Second))
	waitAgent(t, h)
}

// waitRunning waits, a minute at most, until container name runs on one of
// hosts, and returns it there.
func waitRunning(t *testing.T, name string, hosts ...string) engineContainer {
	t.Helper()
	var where engineContainer
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		for _, c := range liveContainers(t, hosts...) {
			if c.Name == name && c.State.Running {
				where = c
				return poll.Success()
			}
		}
		return poll.Continue("%s runs on none of %v yet", name, hosts)
	}, poll.WithTimeout(time.Minute), poll.WithDelay(time.Second))
	return where
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	assert.NilError(t, err)
	return st.Size()
}

// statsOn reads the fleet's failover counters through manager engine ctx.
func statsOn(t *testing.T, ctx string) map[string]string {
	t.Helper()
	r := docker(t, ctx, "config", "inspect", "docker-fleet-stats", "--format", "{{json .Spec.Labels}}")
	l := map[string]string{}
	if r.Code == 0 {
		assert.NilError(t, json.Unmarshal([]byte(r.Stdout), &l))
	}
	return l
}

// waitLeader waits until host h's engine leads the swarm.
func waitLeader(t *testing.T, h string) {
	t.Helper()
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		r := docker(t, h, "node", "inspect", "self", "--format", "{{.ManagerStatus.Leader}}")
		if r.Code == 0 && strings.TrimSpace(r.Stdout) == "true" {
			return poll.Success()
		}
		return poll.Continue("%s does not lead the swarm: %s", h, r)
	}, poll.WithTimeout(time.Minute), poll.WithDelay(time.Second))
}

// TestFailoverFollowsTheSwarmLeader hands the swarm's leadership from h1 to
// h2 (promote h2, demote h1), then loses h3: h2's agent relocates, h1's
// does not, and the replica is made once.
func TestFailoverFollowsTheSwarmLeader(t *testing.T) {
	initFleet(t)
	setFailover(t, testGrace.String())
	t.Cleanup(func() { setFailover(t, "30s") })
	lost := replicaOnH3(t)
	before := statsOn(t, manager)

	mustDocker(t, manager, "node", "promote", "h2")
	t.Cleanup(func() {
		// Leadership back to h1, whichever engine manages now, with h3 up
		// to learn of it.
		sim(t, "start-engine", "h3")
		for _, h := range []string{"h2", manager} {
			docker(t, h, "node", "promote", "h1")
		}
		waitManager(t, manager)
		// A worker that knows no manager but h2 would be lost when h2 is
		// demoted: first every node learns that h1 manages again.
		for _, h := range workers {
			waitKnowsManager(t, h, manager)
		}
		docker(t, manager, "node", "demote", "h2")
		waitLeader(t, manager)
		waitAgent(t, "h2")
	})
	waitManager(t, "h2")
	waitKnowsManager(t, "h3", "h2")
	mustDocker(t, "h2", "node", "demote", "h1")
	waitLeader(t, "h2")
	logs := map[string]int64{}
	for _, h := range []string{"h1", "h2"} {
		logs[h] = fileSize(t, "/run/fsim/"+h+"/dockerd.log")
	}

	sim(t, "stop-engine", "h3")
	waitRunning(t, lost, "h1", "h2")
	since := func(h string) string {
		b, err := os.ReadFile("/run/fsim/" + h + "/dockerd.log")
		assert.NilError(t, err)
		return string(b[logs[h]:])
	}
	assert.Check(t, is.Contains(since("h2"), "leader: relocated "+lost), "the new leader's agent relocates")
	assert.Check(t, !strings.Contains(since("h1"), "leader: relocated"), "the old leader's agent does not")
	after := statsOn(t, "h2")
	n := func(l map[string]string) int { v, _ := strconv.Atoi(l["relocations-cold"]); return v }
	assert.Check(t, is.Equal(n(after), n(before)+1), "relocated once: %v then %v", before, after)

	// (The fleet's commands need h1, a worker for now: the fence itself
	// tells that h3's agent is back.)
	sim(t, "start-engine", "h3")
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		for _, c := range hostContainers(t, "h3") {
			if strings.TrimPrefix(c.Name, "/") == lost {
				return poll.Continue("h3 still has its copy of %s", lost)
			}
		}
		return poll.Success()
	}, poll.WithTimeout(time.Minute), poll.WithDelay(time.Second))
	var copies []string
	for _, c := range liveContainers(t, "h1", "h2", "h3") {
		if c.Name == lost && c.State.Running {
			copies = append(copies, c.Host)
		}
	}
	assert.Check(t, is.Len(copies, 1), "one copy of %s runs: %v", lost, copies)
}

// waitManager waits until host h's engine is a reachable manager.
func waitManager(t *testing.T, h string) {
	t.Helper()
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		r := docker(t, h, "info", "--format", "{{.Swarm.ControlAvailable}}")
		if r.Code == 0 && strings.TrimSpace(r.Stdout) == "true" {
			return poll.Success()
		}
		return poll.Continue("%s is no manager yet", h)
	}, poll.WithTimeout(time.Minute), poll.WithDelay(time.Second))
}

// waitKnowsManager waits until host h's engine lists mgr among the swarm's
// managers it can reach.
func waitKnowsManager(t *testing.T, h, mgr string) {
	t.Helper()
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		r := docker(t, h, "info", "--format", "{{range .Swarm.RemoteManagers}}{{.Addr}} {{end}}")
		if r.Code == 0 && strings.Contains(r.Stdout, hostAddr(mgr)+":") {
			return poll.Success()
		}
		return poll.Continue("%s does not know %s as a manager yet: %s", h, mgr, r.Stdout)
	}, poll.WithTimeout(time.Minute), poll.WithDelay(time.Second))
}
