//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/cpuset"
)

// callsSummary is what "workload calls" prints.
type callsSummary struct {
	Calls      int            `json:"calls"`
	Errors     int            `json:"errors"`
	Versions   map[string]int `json:"versions"`
	LastErrors []string       `json:"lastErrors"`
}

// replicaView is what an update test keeps of each replica.
type replicaView struct {
	host, cpuset, image, version, started string
	running                               bool
	cores                                 int
}

func replicasOf(t *testing.T, svc string) map[string]replicaView {
	t.Helper()
	out := map[string]replicaView{}
	for _, c := range ofService(engineContainers(t), svc) {
		set, err := cpuset.Parse(c.HostConfig.CpusetCpus)
		assert.NilError(t, err)
		v := replicaView{host: c.Host, cpuset: c.HostConfig.CpusetCpus, image: c.Config.Image, started: c.State.StartedAt, running: c.State.Running, cores: len(set)}
		for _, e := range c.Config.Env {
			if val, ok := strings.CutPrefix(e, "VERSION="); ok {
				v.version = val
			}
		}
		out[c.Name] = v
	}
	return out
}

// serviceUpdate is describe's view of a service's update.
type serviceUpdate struct {
	Spec struct {
		Image    string   `json:"image"`
		Env      []string `json:"env"`
		Revision int      `json:"revision"`
	} `json:"spec"`
	Update *struct {
		State  string `json:"state"`
		From   int    `json:"from"`
		To     int    `json:"to"`
		Reason string `json:"reason"`
	} `json:"update"`
	Previous *struct {
		Revision int `json:"revision"`
	} `json:"previous"`
}

func describeUpdate(t *testing.T, svc string) serviceUpdate {
	t.Helper()
	var v serviceUpdate
	assert.NilError(t, json.Unmarshal([]byte(mustFleet(t, "describe", svc, "--format", "json")), &v))
	return v
}

// tagWorkload gives the workload image another name on one host only, for
// an update to a new image that the other nodes get from that host.
func tagWorkload(t *testing.T, host, tag string) {
	t.Helper()
	mustDocker(t, host, "tag", workload, tag)
	t.Cleanup(func() {
		for _, h := range fleetHosts(t) {
			docker(t, h, "rmi", tag)
		}
	})
}

// updateUnderCalls updates svc while another container calls it by name
// twenty times a second, and says how the calls went.
func updateUnderCalls(t *testing.T, svc string, args ...string) callsSummary {
	t.Helper()
	stop := clientSummary[callsSummary](t, manager, "calls", "http://"+svc+":8080/", "50")
	time.Sleep(2 * time.Second)
	out := mustFleet(t, append(append([]string{"update"}, args...), svc)...)
	time.Sleep(5 * time.Second)
	sum := stop()
	t.Logf("update: %s\ncalls: %+v", out, sum)
	return sum
}

// A service of three replicas with exclusive cores, called by name twenty
// times a second, is updated to a new image and environment: every
// replica keeps its name, node and core count, and (almost) no call fails.
func TestUpdateRollsWithoutFailedCalls(t *testing.T) {
	initFleet(t)
	removeServices(t, "upd")
	mustFleet(t, "create", "--name", "upd", "--image", workload, "--replicas", "3", "--cpus", "1", "--memory", "64m", "-e", "VERSION=1")
	before := replicasOf(t, "upd")
	assert.Assert(t, is.Len(before, 3))
	tagWorkload(t, manager, "fleet-workload:v2")

	sum := updateUnderCalls(t, "upd", "--image", "fleet-workload:v2", "--env-add", "VERSION=2", "--update-monitor", "2s")

	after := replicasOf(t, "upd")
	assert.Assert(t, is.Len(after, 3))
	for name, b := range before {
		a, ok := after[name]
		assert.Assert(t, ok, "%s is gone: %v", name, after)
		assert.Check(t, a.running, name)
		assert.Check(t, is.Equal(a.host, b.host), "%s moved", name)
		assert.Check(t, is.Equal(a.cores, 1), name)
		assert.Check(t, is.Equal(a.image, "fleet-workload:v2"), name)
		assert.Check(t, is.Equal(a.version, "2"), name)
		assert.Check(t, a.started != b.started, "%s was not replaced", name)
	}
	assertDisjointCores(t, engineContainers(t))
	assert.Check(t, sum.Calls >= 100, "%+v", sum)
	assert.Check(t, sum.Versions["1"] > 0 && sum.Versions["2"] > 0, "%+v", sum)
	// A call in flight at the moment its replica leaves the network (so
	// that no new call reaches it) is cut: at most one per replica, rarely.
	assert.Check(t, sum.Errors*100 <= sum.Calls, "more than 1%% of the calls failed: %+v", sum)

	v := describeUpdate(t, "upd")
	assert.Assert(t, v.Update != nil)
	assert.Check(t, is.Equal(v.Update.State, "completed"))
	assert.Check(t, is.Equal(v.Spec.Revision, 1))
	assert.Check(t, v.Previous != nil && v.Previous.Revision == 0, "%+v", v.Previous)
}

// An update whose replicas cannot start is rolled back by itself, every
// replica on the previous definition and running; --rollback after a good
// update restores the one before it.
func TestUpdateRollsBack(t *testing.T) {
	initFleet(t)
	removeServices(t, "urb")
	mustFleet(t, "create", "--name", "urb", "--image", workload, "--replicas", "2", "--cpus", "1", "--memory", "64m", "-e", "VERSION=1")
	mustFleet(t, "update", "--env-add", "VERSION=2", "--update-monitor", "1s", "urb")
	good := replicasOf(t, "urb")

	// The workload exits at once on arguments it does not know.
	r := fleetCmd(t, "update", "--args", "no-such-mode", "--update-monitor", "1s", "urb")
	assert.Check(t, is.Equal(r.Code, 1), r.String())
	assert.Check(t, is.Contains(r.Stderr, "rolled back"), r.String())
	assert.Check(t, is.Contains(r.Stderr, "exited"), r.String())
	now := replicasOf(t, "urb")
	assert.Assert(t, is.Len(now, 2), "%v", now)
	for name, g := range good {
		assert.Check(t, now[name].running, name)
		assert.Check(t, is.Equal(now[name].version, "2"), name)
		assert.Check(t, is.Equal(now[name].host, g.host), name)
	}
	v := describeUpdate(t, "urb")
	assert.Check(t, is.Equal(v.Update.State, "rolled_back"), "%+v", v.Update)
	assert.Check(t, is.Contains(v.Update.Reason, "exited"), "%+v", v.Update)
	assert.Check(t, is.Equal(v.Spec.Revision, 1))

	// --rollback after the good update: back on VERSION=1.
	mustFleet(t, "update", "--rollback", "--update-monitor", "1s", "urb")
	for name, c := range replicasOf(t, "urb") {
		assert.Check(t, c.running, name)
		assert.Check(t, is.Equal(c.version, "1"), name)
	}
	v = describeUpdate(t, "urb")
	assert.Check(t, is.Equal(v.Spec.Revision, 0))
	assert.Check(t, slices.Contains(v.Spec.Env, "VERSION=1"), "%v", v.Spec.Env)

	// Memory alone changes in place (as resize), and --rollback changes it
	// back in place: the same processes throughout.
	running := replicasOf(t, "urb")
	mustFleet(t, "update", "--memory", "96m", "urb")
	for name, c := range engineMemory(t, "urb") {
		assert.Check(t, is.Equal(c, int64(96<<20)), name)
	}
	mustFleet(t, "update", "--rollback", "urb")
	for name, c := range engineMemory(t, "urb") {
		assert.Check(t, is.Equal(c, int64(64<<20)), name)
	}
	for name, c := range replicasOf(t, "urb") {
		assert.Check(t, is.Equal(c.started, running[name].started), "%s was replaced, not resized", name)
	}
}

func engineMemory(t *testing.T, svc string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, c := range ofService(engineContainers(t), svc) {
		out[c.Name] = c.HostConfig.Memory
	}
	return out
}

// startUpdate runs an update in the background and kills the CLI (the
// docker CLI and its plugin) once the first replica is replaced.
func killedUpdate(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("docker", append([]string{"--context", manager, "fleet", "update"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	assert.NilError(t, err)
	assert.NilError(t, cmd.Start())
	lines := bufio.NewScanner(stderr)
	var seen []string
	for lines.Scan() {
		seen = append(seen, lines.Text())
		if strings.Contains(lines.Text(), "replaced on") {
			break
		}
	}
	assert.NilError(t, syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL))
	_ = cmd.Wait()
	assert.Assert(t, len(seen) > 0 && strings.Contains(seen[len(seen)-1], "replaced on"), "the update never replaced a replica:\n%s", strings.Join(seen, "\n"))
}

// The CLI killed in the middle of an update leaves it in the fleet: scale
// is refused by name, update finishes it, and --rollback from the same
// state restores the previous definition.
func TestUpdateSurvivesTheCLI(t *testing.T) {
	initFleet(t)
	removeServices(t, "ukl")
	mustFleet(t, "create", "--name", "ukl", "--image", workload, "--replicas", "3", "--memory", "64m", "-e", "VERSION=1")

	killedUpdate(t, "--env-add", "VERSION=2", "--update-delay", "5s", "--update-monitor", "1s", "ukl")
	v := describeUpdate(t, "ukl")
	assert.Assert(t, v.Update != nil)
	assert.Check(t, is.Equal(v.Update.State, "updating"))
	r := fleetCmd(t, "scale", "ukl=4")
	assert.Check(t, is.Equal(r.Code, 1), r.String())
	assert.Check(t, is.Contains(r.Stderr, "an update of it has not ended"), r.String())
	r = fleetCmd(t, "update", "--env-add", "VERSION=9", "ukl")
	assert.Check(t, is.Equal(r.Code, 1), r.String())
	assert.Check(t, is.Contains(r.Stderr, "docker fleet update ukl to finish it"), r.String())

	mustFleet(t, "update", "ukl")
	cs := replicasOf(t, "ukl")
	assert.Check(t, is.Len(cs, 3))
	for name, c := range cs {
		assert.Check(t, c.running, name)
		assert.Check(t, is.Equal(c.version, "2"), name)
	}
	assert.Check(t, is.Equal(describeUpdate(t, "ukl").Update.State, "completed"))

	// Killed again, then rolled back from there: every replica on VERSION=2.
	killedUpdate(t, "--env-add", "VERSION=3", "--update-delay", "5s", "--update-monitor", "1s", "ukl")
	mustFleet(t, "update", "--rollback", "ukl")
	cs = replicasOf(t, "ukl")
	assert.Check(t, is.Len(cs, 3))
	for name, c := range cs {
		assert.Check(t, c.running, name)
		assert.Check(t, is.Equal(c.version, "2"), name)
	}
	v = describeUpdate(t, "ukl")
	assert.Check(t, is.Equal(v.Update.State, "rolled_back"), "%+v", v.Update)
	assert.Check(t, is.Equal(v.Spec.Revision, 1))
}

// A Compose file applied again rolls only the service that changed.
func TestComposeApplyAgain(t *testing.T) {
	initFleet(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	write := func(version string) {
		assert.NilError(t, os.WriteFile(file, []byte(`name: reapply
services:
  front:
    image: `+workload+`
    environment: [VERSION=1]
    mem_limit: 64m
  back:
    image: `+workload+`
    environment: [VERSION=`+version+`]
    mem_limit: 64m
    deploy: {replicas: 2}
`), 0o644))
	}
	write("1")
	t.Cleanup(func() { fleetCmd(t, "down", "-p", "reapply") })
	mustFleet(t, "create", "-f", file)
	front, back := replicasOf(t, "front"), replicasOf(t, "back")

	// Unchanged: nothing to do.
	out := mustFleet(t, "create", "-f", file)
	assert.Check(t, is.Contains(out, "unchanged"), out)

	write("2")
	plan := mustFleet(t, "create", "-f", file, "--dry-run")
	assert.Check(t, is.Contains(plan, "back     update"), plan)
	assert.Check(t, is.Contains(plan, "front    unchanged"), plan)
	assert.Check(t, is.Equal(replicasOf(t, "back")["back.1"].version, "1"), "the dry run changed something")

	out = mustFleet(t, "create", "-f", file)
	t.Log(out)
	for name, c := range replicasOf(t, "front") {
		assert.Check(t, is.Equal(c.started, front[name].started), "%s was restarted", name)
	}
	nowBack := replicasOf(t, "back")
	assert.Check(t, is.Len(nowBack, 2))
	for name, c := range nowBack {
		assert.Check(t, is.Equal(c.version, "2"), name)
		assert.Check(t, c.started != back[name].started, "%s was not replaced", name)
	}
}

// start-first: each replica's successor runs beside it and takes its name
// only once it is up; the name keeps answering throughout.
func TestUpdateStartFirst(t *testing.T) {
	initFleet(t)
	removeServices(t, "usf")
	mustFleet(t, "create", "--name", "usf", "--image", workload, "--replicas", "2", "--cpus", "1", "--memory", "64m", "-e", "VERSION=1")
	before := replicasOf(t, "usf")

	sum := updateUnderCalls(t, "usf", "--update-order", "start-first", "--env-add", "VERSION=2", "--update-monitor", "2s")

	after := replicasOf(t, "usf")
	assert.Assert(t, is.Len(after, 2), "%v", after)
	for name := range before {
		a, ok := after[name]
		assert.Assert(t, ok, "%s is gone: %v", name, after)
		assert.Check(t, a.running, name)
		assert.Check(t, is.Equal(a.version, "2"), name)
		assert.Check(t, is.Equal(a.cores, 1), name)
		// The successor answers as the replica: its hostname is the name.
		var st struct{ Hostname, Version string }
		assert.NilError(t, json.Unmarshal([]byte(mustDocker(t, manager, "run", "--rm", "--network", "fleet", workload, "get", "http://"+name+":8080/")), &st))
		assert.Check(t, is.Equal(st.Hostname, name))
		assert.Check(t, is.Equal(st.Version, "2"))
	}
	assertDisjointCores(t, engineContainers(t))
	// A call in flight when its replica leaves the network fails (see
	// TestUpdateRollsWithoutFailedCalls).
	assert.Check(t, sum.Errors*100 <= sum.Calls, "more than 1%% of the calls failed: %+v", sum)
	assert.Check(t, sum.Versions["2"] > 0, "%+v", sum)
}
