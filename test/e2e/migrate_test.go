//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
)

// workloadState is what the test workload reports of itself.
type workloadState struct {
	Hostname      string `json:"hostname"`
	Counter       uint64 `json:"counter"`
	BallastSHA256 string `json:"ballastSHA256"`
	BallastOK     *bool  `json:"ballastOK"`
	Birth         string `json:"birth"`
	// UID and Extras: see EXTRAS in test/workload.
	UID    int               `json:"uid"`
	Extras map[string]string `json:"extras"`
}

type pollSummary struct {
	Polls    int     `json:"polls"`
	Errors   int     `json:"errors"`
	MaxGapMs float64 `json:"maxGapMs"`
	Dials    int     `json:"dials"`
	Last     uint64  `json:"lastCounter"`
	WentBack bool    `json:"counterWentBack"`
}

// ask asks the workload at ip for its state (verifying its ballast) from a
// client container on the fleet network on host from.
func ask(t *testing.T, from, ip string) workloadState {
	t.Helper()
	var st workloadState
	for attempt := 0; ; attempt++ {
		r := docker(t, from, "run", "--rm", "--network", "fleet", workload, "get", "http://"+ip+":8080/?verify=1")
		if r.Code == 0 && json.Unmarshal([]byte(r.Stdout), &st) == nil {
			return st
		}
		assert.Assert(t, attempt < 10, "asking %s: %s", ip, r)
		time.Sleep(time.Second)
	}
}

// poller polls the workload at ip from host from until stopped.
func poller(t *testing.T, from, ip string) func() pollSummary {
	t.Helper()
	return clientSummary[pollSummary](t, from, "poll", "http://"+ip+":8080/", "30")
}

// dialSummary is what "workload dial" prints.
type dialSummary struct {
	Dials    int `json:"dials"`
	OK       int `json:"ok"`
	Refused  int `json:"refused"`
	TimedOut int `json:"timedOut"`
	Other    int `json:"other"`
}

// dialer opens a new connection to the workload at ip every 10 ms from a
// client on host from, until the returned function stops it.
func dialer(t *testing.T, from, ip string) func() dialSummary {
	t.Helper()
	return clientSummary[dialSummary](t, from, "dial", ip+":8080", "10")
}

// clientSummary runs the workload as a client (args) in a container on the
// fleet network on host from; the returned function stops it and decodes
// the summary it prints last.
func clientSummary[S any](t *testing.T, from string, args ...string) func() S {
	t.Helper()
	name := "e2e-" + args[0] + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	mustDocker(t, from, append([]string{"run", "-d", "--name", name, "--network", "fleet", workload}, args...)...)
	t.Cleanup(func() { docker(t, from, "rm", "-f", name) })
	return func() S {
		mustDocker(t, from, "stop", name)
		var s S
		out := mustDocker(t, from, "logs", name)
		lines := strings.Split(out, "\n")
		assert.NilError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &s), out)
		return s
	}
}

// containerOn finds a fleet container on the engines; there must be one at most.
func containerOn(t *testing.T, name string) (engineContainer, bool) {
	t.Helper()
	var found []engineContainer
	for _, c := range engineContainers(t) {
		if c.Name == name {
			found = append(found, c)
		}
	}
	assert.Assert(t, len(found) <= 1, "%s exists on %d engines", name, len(found))
	if len(found) == 0 {
		return engineContainer{}, false
	}
	return found[0], true
}

func fleetIP(t *testing.T, name string) string {
	t.Helper()
	return strings.TrimSpace(mustFleet(t, "describe", name, "--format", "{{.IP}}"))
}

// migrateWith runs a migration and, when its progress first shows a line
// starting with trigger, runs inject.
func migrateWith(t *testing.T, args []string, trigger string, inject func()) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"--context", manager, "fleet", "migrate"}, args...)...)
	stderr, err := cmd.StderrPipe()
	assert.NilError(t, err)
	var out strings.Builder
	cmd.Stdout = &out
	assert.NilError(t, cmd.Start())
	var errText strings.Builder
	sc := bufio.NewScanner(stderr)
	injected := false
	for sc.Scan() {
		line := sc.Text()
		errText.WriteString(line + "\n")
		if !injected && strings.HasPrefix(line, trigger) {
			injected = true
			inject()
		}
	}
	err = cmd.Wait()
	assert.Check(t, injected, "the migration never showed %q:\n%s", trigger, errText.String())
	r := result{Stdout: out.String(), Stderr: errText.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	}
	return r
}

func TestMigrateKeepsStateUnderPolling(t *testing.T) {
	initFleet(t)
	removeServices(t, "stateful")
	mustFleet(t, "create", "--name", "stateful", "--image", workload, "--node", "h2", "--cpus", "1", "--memory", "256m", "-e", "BALLAST_MB=64")
	before, _ := containerOn(t, "stateful.1")
	ip := fleetIP(t, "stateful.1")
	st0 := ask(t, "h1", ip)
	stop := poller(t, "h1", ip)
	stopDials := dialer(t, "h1", ip)
	time.Sleep(2 * time.Second)

	t0 := time.Now()
	r := fleetCmd(t, "migrate", "stateful.1", "--to", "h3", "--format", "json")
	assert.Assert(t, r.Code == 0, r.String())
	var res struct {
		From     string  `json:"from"`
		To       string  `json:"to"`
		Downtime float64 `json:"downtimeSeconds"`
		Bytes    int64   `json:"bytes"`
		Dump     *struct {
			PagesWritten uint64 `json:"pagesWritten"`
		} `json:"dump"`
		Restore *struct {
			PagesRestored uint64 `json:"pagesRestored"`
		} `json:"restore"`
		Phases *api.Phases `json:"phases"`
	}
	assert.NilError(t, json.Unmarshal([]byte(r.Stdout), &res))
	// The frozen window in order, ending where the downtime ends.
	assert.Assert(t, res.Phases != nil, "no phases: %s", r.Stdout)
	p := *res.Phases
	assert.Check(t, 0 < p.Dump && p.Dump <= p.LastByte && p.LastByte <= p.Restored && p.Restored <= p.Reachable, "%+v", p)
	assert.Check(t, is.Equal(p.Reachable, res.Downtime))
	assert.Check(t, p.Restore > 0 && p.Restore < p.Restored-p.LastByte+0.01, "%+v", p)
	// The twin was made before the freeze (no holder on this engine).
	assert.Check(t, is.Equal(p.Twin, 0.0), "%+v", p)
	assert.Check(t, is.Equal(res.From, "h2"))
	assert.Check(t, is.Equal(res.To, "h3"))
	assert.Check(t, res.Downtime > 0 && res.Bytes > 64<<20, "%+v", res)
	// CRIU's own figures, read with go-criu from its stats files.
	assert.Assert(t, res.Dump != nil && res.Restore != nil, "CRIU stats: %s", r.Stdout)
	assert.Check(t, res.Dump.PagesWritten > 64<<20/4096, "%+v", res.Dump)
	assert.Check(t, is.Equal(res.Restore.PagesRestored, res.Dump.PagesWritten))
	assert.Check(t, is.Contains(r.Stderr, "transfer:"))

	time.Sleep(time.Second)
	poll := stop()
	t.Logf("poller: %+v", poll)
	assert.Check(t, !poll.WentBack, "the counter went back")
	assert.Check(t, is.Equal(poll.Dials, 1), "the poller's TCP connection did not survive: %+v", poll)
	assert.Check(t, poll.Last > st0.Counter)
	// New connections during the move wait; none is refused (the
	// destination holds the container's traffic until its sockets are
	// restored).
	dials := stopDials()
	t.Logf("dialer: %+v", dials)
	assert.Check(t, is.Equal(dials.Refused, 0), "connections refused during the migration: %+v", dials)
	assert.Check(t, dials.OK > 0, "%+v", dials)

	after, ok := containerOn(t, "stateful.1")
	assert.Assert(t, ok)
	assert.Check(t, is.Equal(after.Host, "h3"), "runs on the destination only")
	assert.Check(t, after.State.Running)
	assert.Check(t, is.Equal(after.HostConfig.Memory, before.HostConfig.Memory))
	assert.Check(t, is.Equal(len(strings.Split(after.HostConfig.CpusetCpus, ",")), len(strings.Split(before.HostConfig.CpusetCpus, ","))))
	assertDisjointCores(t, engineContainers(t))
	assert.Check(t, is.Equal(fleetIP(t, "stateful.1"), ip))

	st1 := ask(t, "h1", ip)
	assert.Check(t, st1.Counter >= poll.Last, "counter %d after %d", st1.Counter, poll.Last)
	assert.Check(t, st1.BallastOK != nil && *st1.BallastOK, "ballast corrupted")
	assert.Check(t, is.Equal(st1.BallastSHA256, st0.BallastSHA256))
	assert.Check(t, is.Equal(st1.Birth, st0.Birth), "the file written at first start")

	// The history is kept.
	var d struct {
		Migrations []struct {
			From, To string
			Phases   *api.Phases `json:"phases"`
		} `json:"migrations"`
	}
	assert.NilError(t, json.Unmarshal([]byte(mustFleet(t, "describe", "stateful.1", "--format", "json")), &d))
	assert.Assert(t, is.Len(d.Migrations, 1))
	assert.Check(t, is.Equal(d.Migrations[0].To, "h3"))
	assert.Check(t, is.DeepEqual(d.Migrations[0].Phases, res.Phases))
	assert.Check(t, is.Contains(mustFleet(t, "describe", "stateful.1"), "reachable"))

	// And `docker fleet events` told it.
	evs := mustFleet(t, "events", "--since", t0.Add(-time.Second).Format(time.RFC3339Nano), "--until", "0s",
		"--format", "{{.Type}} {{.Container}} {{.From}} {{.To}}")
	assert.Check(t, is.Equal(strings.TrimSpace(evs), "migration stateful.1 h2 h3"))
}

func TestMigrateNamedVolume(t *testing.T) {
	initFleet(t)
	removeServices(t, "vol")
	// Another replica's volume of the same name lives on the destination.
	for _, h := range []string{"h2", "h3"} {
		docker(t, h, "volume", "rm", "-f", "e2e-vol")
	}
	mustDocker(t, "h3", "volume", "create", "e2e-vol")
	t.Cleanup(func() { removeServices(t, "vol"); docker(t, "h3", "volume", "rm", "-f", "e2e-vol") })
	unrelated := mustDocker(t, "h3", "volume", "inspect", "e2e-vol", "--format", "{{.Mountpoint}}")
	assert.NilError(t, os.WriteFile(filepath.Join(unrelated, "other"), []byte("not yours"), 0o644))
	untouched := treeListing(t, unrelated)

	mustFleet(t, "create", "--name", "vol", "--image", workload, "--node", "h2", "-v", "e2e-vol:/data", "-e", "BIRTH_FILE=/data/birth", "-e", "BALLAST_MB=4")
	ip := fleetIP(t, "vol.1")
	st0 := ask(t, "h1", ip)
	mustFleet(t, "migrate", "vol.1", "--to", "h3")

	// The volume arrived in a fresh one, recorded in the container.
	name := mustDocker(t, "h3", "inspect", "vol.1", "--format", "{{range .Mounts}}{{.Name}}{{end}}")
	assert.Check(t, name != "e2e-vol" && strings.HasPrefix(name, "e2e-vol-"), "volume %q", name)
	t.Cleanup(func() { docker(t, "h3", "volume", "rm", "-f", name) })
	mp := mustDocker(t, "h3", "volume", "inspect", name, "--format", "{{.Mountpoint}}")
	b, err := os.ReadFile(filepath.Join(mp, "birth"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(b), st0.Birth), "the volume's file on the destination")
	assert.Check(t, is.Equal(ask(t, "h1", ip).Birth, st0.Birth))
	assert.Check(t, is.Equal(treeListing(t, unrelated), untouched), "the unrelated volume changed")
	// Nothing of it stays on the source.
	assert.Check(t, !strings.Contains(mustDocker(t, "h2", "volume", "ls", "-q"), "e2e-vol"), "the source volume is left behind")
}

func TestMigrateToHostWithoutImage(t *testing.T) {
	initFleet(t)
	removeServices(t, "noimg")
	sim(t, "up", "4")
	mustFleet(t, "init", "--worker", "h4")
	mustFleet(t, "create", "--name", "noimg", "--image", workload, "--node", "h2", "-e", "BALLAST_MB=4")
	// Take the image away from h4.
	for _, id := range strings.Fields(mustDocker(t, "h4", "ps", "-aq", "--filter", "ancestor="+workload)) {
		mustDocker(t, "h4", "rm", "-f", id)
	}
	mustDocker(t, "h4", "rmi", "-f", workload)
	ip := fleetIP(t, "noimg.1")
	st0 := ask(t, "h1", ip)

	r := fleetCmd(t, "migrate", "noimg.1", "--to", "h4")
	assert.Assert(t, r.Code == 0, r.String())
	assert.Check(t, is.Contains(r.Stderr, "streaming image"))
	c, _ := containerOn(t, "noimg.1")
	assert.Check(t, is.Equal(c.Host, "h4"))
	assert.Check(t, is.Equal(ask(t, "h1", ip).Birth, st0.Birth))
}

// assertRunsOnSourceWithState checks the outcome every failed migration
// must have: one running copy, on the source, with its state.
func assertRunsOnSourceWithState(t *testing.T, name, source, ip string, st0 workloadState) {
	t.Helper()
	c, ok := containerOn(t, name)
	assert.Assert(t, ok, "%s is gone", name)
	assert.Check(t, is.Equal(c.Host, source))
	assert.Check(t, c.State.Running)
	st := ask(t, "h1", ip)
	assert.Check(t, st.Counter >= st0.Counter, "counter went back: %d < %d", st.Counter, st0.Counter)
	assert.Check(t, st.BallastOK != nil && *st.BallastOK)
	assert.Check(t, is.Equal(st.Birth, st0.Birth))
}

// waitAgent waits until the node's agent answers again, re-enabling its
// plugin if the engine did not restart it.
func waitAgent(t *testing.T, h string) {
	t.Helper()
	for i := 0; i < 40; i++ {
		if fleetCmd(t, "describe", h, "--format", "{{.Info.Node}}").Code == 0 {
			return
		}
		if i == 10 {
			docker(t, h, "plugin", "disable", "-f", "fleet-agent:latest")
			docker(t, h, "plugin", "enable", "fleet-agent:latest")
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("the agent of %s does not come back", h)
}

// noTwinLeft checks that the destination kept nothing of a failed
// migration: no copy, no network holder.
func noTwinLeft(t *testing.T, h, name string) {
	t.Helper()
	for i := 0; ; i++ {
		if mustDocker(t, h, "ps", "-aq", "--filter", "name=^/"+name+"$") == "" &&
			mustDocker(t, h, "ps", "-aq", "--filter", "name=^/"+name+".netns$") == "" {
			return
		}
		assert.Assert(t, i < 20, "%s left a copy of %s", h, name)
		time.Sleep(500 * time.Millisecond)
	}
}

func faultSetup(t *testing.T, svc string) (string, workloadState) {
	t.Helper()
	removeServices(t, svc)
	// A large ballast keeps the transfer going for a few seconds: time for
	// the fault to strike while it runs.
	mustFleet(t, "create", "--name", svc, "--image", workload, "--node", "h2", "--cpus", "1", "--memory", "1536m", "-e", "BALLAST_MB=1024")
	ip := fleetIP(t, svc+".1")
	return ip, ask(t, "h1", ip)
}

func TestMigrateDestinationEngineStopped(t *testing.T) {
	initFleet(t)
	ip, st0 := faultSetup(t, "fault-engine")
	t.Cleanup(func() { sim(t, "start-engine", "h3"); waitAgent(t, "h3") })
	r := migrateWith(t, []string{"fault-engine.1", "--to", "h3"}, "transfer: ", func() { sim(t, "stop-engine", "h3") })
	t.Log(r.Stderr)
	assert.Check(t, is.Equal(r.Code, 1), r.String())
	assert.Check(t, is.Contains(r.Stderr, "runs on h2 again with its state"))
	sim(t, "start-engine", "h3")
	waitAgent(t, "h3")
	assertRunsOnSourceWithState(t, "fault-engine.1", "h2", ip, st0)
	noTwinLeft(t, "h3", "fault-engine.1")
}

func TestMigrateDestinationAgentKilled(t *testing.T) {
	initFleet(t)
	ip, st0 := faultSetup(t, "fault-agent")
	kill := func() {
		out := run(t, "ip", "netns", "pids", "h3").Stdout
		for _, pid := range strings.Fields(out) {
			comm, _ := os.ReadFile("/proc/" + pid + "/comm")
			if strings.TrimSpace(string(comm)) == "fleet-agent" {
				run(t, "kill", "-9", pid)
			}
		}
	}
	t.Cleanup(func() { waitAgent(t, "h3") })
	r := migrateWith(t, []string{"fault-agent.1", "--to", "h3"}, "transfer: ", kill)
	t.Log(r.Stderr)
	assert.Check(t, is.Equal(r.Code, 1), r.String())
	assert.Check(t, is.Contains(r.Stderr, "runs on h2 again with its state"))
	waitAgent(t, "h3")
	assertRunsOnSourceWithState(t, "fault-agent.1", "h2", ip, st0)
	noTwinLeft(t, "h3", "fault-agent.1")
}

// TestMigrateLinkCut cuts the link between source and destination while
// the source checkpoints (the destination waits for a stream that has not
// begun, so only the connection's keep-alive can tell it the link is gone)
// and while it streams.
func TestMigrateLinkCut(t *testing.T) {
	initFleet(t)
	ip, st0 := faultSetup(t, "fault-link")
	for _, trigger := range []string{"checkpoint: checkpointing", "transfer: "} {
		t.Run(strings.TrimSuffix(strings.Fields(trigger)[0], ":"), func(t *testing.T) {
			var heal func()
			r := migrateWith(t, []string{"fault-link.1", "--to", "h3"}, trigger, func() { heal = cutLink(t, "h2", "h3", true) })
			t.Log(r.Stderr)
			if heal != nil {
				heal()
			}
			assert.Check(t, is.Equal(r.Code, 1), r.String())
			assert.Check(t, is.Contains(r.Stderr, "runs on h2 again with its state"))
			assertRunsOnSourceWithState(t, "fault-link.1", "h2", ip, st0)
			noTwinLeft(t, "h3", "fault-link.1")
		})
	}
}

func TestMigrateMPTCPRefused(t *testing.T) {
	initFleet(t)
	removeServices(t, "mptcp")
	mustFleet(t, "create", "--name", "mptcp", "--image", workload, "--node", "h2", "-e", "MPTCP=1", "-e", "BALLAST_MB=4")
	r := fleetCmd(t, "migrate", "mptcp.1", "--to", "h3")
	assert.Check(t, is.Equal(r.Code, 1), r.String())
	assert.Check(t, is.Contains(r.Stderr, "MPTCP"))
	assert.Check(t, is.Contains(r.Stderr, "GODEBUG=multipathtcp=0"))
	c, ok := containerOn(t, "mptcp.1")
	assert.Assert(t, ok)
	assert.Check(t, is.Equal(c.Host, "h2"))
	assert.Check(t, c.State.Running, "it keeps running")
}

func TestLeaveDrainsNode(t *testing.T) {
	initFleet(t)
	sim(t, "up", "4")
	mustFleet(t, "init", "--worker", "h4")
	removeServices(t, "drain")
	mustFleet(t, "create", "--name", "drain", "--image", workload, "--node", "h4", "--replicas", "3", "--memory", "64m", "-e", "BALLAST_MB=8")
	before := map[string]workloadState{}
	ips := map[string]string{}
	for i := 1; i <= 3; i++ {
		name := "drain." + strconv.Itoa(i)
		ips[name] = fleetIP(t, name)
		before[name] = ask(t, "h1", ips[name])
	}

	r := fleetCmd(t, "leave", "h4")
	assert.Assert(t, r.Code == 0, r.String())
	assert.Check(t, is.Contains(r.Stdout, "h4 left the fleet"))
	for name, st0 := range before {
		c, ok := containerOn(t, name)
		assert.Assert(t, ok, "%s is gone", name)
		assert.Check(t, c.Host != "h4", "%s still on h4", name)
		st := ask(t, "h1", ips[name])
		assert.Check(t, is.Equal(st.Birth, st0.Birth), name)
		assert.Check(t, st.Counter >= st0.Counter, name)
		assert.Check(t, st.BallastOK != nil && *st.BallastOK, name)
	}
	_, listed := swarmNodes(t)["h4"]
	assert.Check(t, !listed, "the swarm still lists h4")
	for i := 0; ; i++ {
		if mustDocker(t, "h4", "plugin", "ls", "-q") == "" {
			break
		}
		assert.Assert(t, i < 20, "h4's engine still has the agent")
		time.Sleep(500 * time.Millisecond)
	}
	assert.Check(t, is.Equal(mustDocker(t, "h4", "info", "--format", "{{.Swarm.LocalNodeState}}"), "inactive"))
}
