//go:build e2e && faults

package e2e

// The migration protocol's fault matrix (make faults): an agent built with
// -tags faults reads /run/fleet-faults/NODE at each of its fault points
// ("POINT exit|hold|fail|nospc"); each case strikes at one point, then
// checks that the container ends in exactly one place with its state, and
// that no node keeps anything of the migration.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

const faultDir = "/run/fleet-faults"

// setFaults arms node's fault points (lines "POINT ACTION").
func setFaults(t *testing.T, node string, lines ...string) {
	t.Helper()
	assert.NilError(t, os.MkdirAll(faultDir, 0o755))
	_ = os.Remove(filepath.Join(faultDir, node+".at"))
	assert.NilError(t, os.WriteFile(filepath.Join(faultDir, node), []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	t.Cleanup(func() { clearFaults(node) })
}

// clearFaults disarms node's fault points, and forgets where it held: an
// agent killed while holding leaves its NODE.at behind.
func clearFaults(node string) {
	_ = os.Remove(filepath.Join(faultDir, node))
	_ = os.Remove(filepath.Join(faultDir, node+".at"))
}

// waitHeld waits until node's agent holds at point.
func waitHeld(t *testing.T, node, point string) {
	t.Helper()
	for i := 0; i < 1200; i++ {
		b, _ := os.ReadFile(filepath.Join(faultDir, node+".at"))
		if strings.TrimSpace(string(b)) == point {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the agent of %s never reached %s", node, point)
}

// startEngine starts h's engine again; a first start can time out while
// the old engine's plugin winds down.
func startEngine(t *testing.T, h string) {
	t.Helper()
	if run(t, simScript(), "start-engine", h).Code != 0 {
		sim(t, "start-engine", h)
	}
}

// migrateAsync starts a migration; the returned function waits for it.
func migrateAsync(t *testing.T, args ...string) (*exec.Cmd, func() result) {
	t.Helper()
	return fleetAsync(t, append([]string{"migrate"}, args...)...)
}

// fleetAsync starts `docker fleet ARGS` against the manager; the returned
// function waits for it.
func fleetAsync(t *testing.T, args ...string) (*exec.Cmd, func() result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cmd := exec.CommandContext(ctx, "docker", append([]string{"--context", manager, "fleet"}, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	assert.NilError(t, cmd.Start())
	return cmd, func() result {
		defer cancel()
		err := cmd.Wait()
		r := result{Stdout: out.String(), Stderr: errb.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			r.Code = ee.ExitCode()
		}
		return r
	}
}

// settled waits until name runs in exactly one place, answering at ip with
// the state it had (st0) or later, and no node keeps anything of its
// migrations: journal entries, tmpfs directories, CRIU configuration
// lines, a second copy or a stray network holder. It returns the host.
func settled(t *testing.T, name, ip string, st0 workloadState) string {
	t.Helper()
	for _, h := range []string{"h2", "h3"} {
		waitAgent(t, h)
	}
	var why string
	for i := 0; i < 120; i++ {
		why = leftovers(t, name)
		if why == "" {
			break
		}
		time.Sleep(time.Second)
	}
	assert.Assert(t, why == "", "after 2 minutes: %s", why)
	c, ok := containerOn(t, name)
	assert.Assert(t, ok, "%s is gone", name)
	assert.Check(t, c.State.Running)
	st := ask(t, "h1", ip)
	assert.Check(t, st.Counter >= st0.Counter, "counter went back: %d < %d", st.Counter, st0.Counter)
	assert.Check(t, st.BallastOK != nil && *st.BallastOK, "ballast")
	assert.Check(t, is.Equal(st.Birth, st0.Birth), "first-start file")
	return c.Host
}

// leftovers says what is left of name's migrations, if anything.
func leftovers(t *testing.T, name string) string {
	t.Helper()
	copies := 0
	for _, c := range engineContainers(t) {
		if c.Name == name {
			copies++
		}
	}
	if copies != 1 {
		return fmt.Sprintf("%d copies of %s", copies, name)
	}
	for _, h := range fleetHosts(t) {
		ents, _ := os.ReadDir(filepath.Join("/var/lib/fsim", h, "docker/fleet/migrations"))
		if len(ents) > 0 {
			return h + " journals " + ents[0].Name()
		}
		if dirs, _ := filepath.Glob("/dev/shm/fleet-" + h + "-*"); len(dirs) > 0 {
			return "tmpfs keeps " + dirs[0]
		}
		holders := strings.Fields(mustDocker(t, h, "ps", "-aq", "--filter", "label=com.docker.fleet.netns-of="+name))
		if len(holders) > 0 {
			if c, _ := containerOn(t, name); c.Host != h {
				return h + " keeps a network holder of " + name
			}
		}
	}
	conf, _ := os.ReadFile("/etc/criu/runc.conf")
	for _, l := range strings.Split(string(conf), "\n") {
		if strings.HasPrefix(l, "images-dir") || strings.HasPrefix(l, "external") {
			return "runc.conf keeps " + l
		}
	}
	return ""
}

// faultSubject creates service svc with one replica on node, one core and
// 64 MB of ballast, and returns the replica, its IP and its state now.
func faultSubject(t *testing.T, svc, node string) (string, string, workloadState) {
	t.Helper()
	mustFleet(t, "create", "--name", svc, "--image", workload, "--node", node, "--cpus", "1", "--memory", "512m", "-e", "BALLAST_MB=64")
	name := svc + ".1"
	ip := fleetIP(t, name)
	return name, ip, ask(t, "h1", ip)
}

// faultCase strikes at one point of a migration from h2 to h3.
type faultCase struct {
	name string
	// node and point: where the fault strikes; action is what the agent
	// does there (exit, fail, nospc), or hold, for strike to act (cut a
	// link, stop an engine, kill the CLI) before the agent goes on.
	node, point, action string
	strike              func(t *testing.T, cli *exec.Cmd) (after func())
	// where the container must end, and the CLI's exit code and words.
	endsOn string
	code   int
	says   string
	// unfrozen: the container was never frozen (no checkpoint began).
	unfrozen bool
	// flaky, when set, says why the case is left out of the matrix for
	// now (FLEET_FAULTS_FLAKY=1 runs it anyway).
	flaky string
}

func TestFaults(t *testing.T) {
	initFleet(t)
	// The matrix stops engines for about as long as the default failover
	// waits (30 s), and a node whose engine is down that long is taken for
	// dead and its container made anew elsewhere (CI: the leader relocated
	// fltn.1 in source-engine-stopped-during-transfer, and the fence that
	// followed broke h2 for the next cases). Failover has tests of its own.
	setFailover(t, "10m")
	t.Cleanup(func() { setFailover(t, "30s") })
	cases := []faultCase{
		// Before the freeze.
		{name: "source-agent-killed-before-freeze", node: "h2", point: "source:prepared", action: "exit",
			endsOn: "h2", code: 1, says: "lost the source agent"},
		// The destination fails while it makes the twin, before the source
		// freezes anything.
		{name: "destination-fails-before-freeze", node: "h3", point: "dest:ready", action: "fail",
			endsOn: "h2", code: 1, says: "destination h3", unfrozen: true},
		{name: "destination-agent-killed-before-freeze", node: "h3", point: "dest:ready", action: "exit",
			endsOn: "h2", code: 1, says: "destination h3", unfrozen: true},
		// During the dump.
		{name: "source-agent-killed-during-dump", node: "h2", point: "source:dump", action: "exit",
			endsOn: "h2", code: 1, says: "lost the source agent"},
		{name: "source-agent-killed-after-dump", node: "h2", point: "source:frozen", action: "exit",
			endsOn: "h2", code: 1, says: "lost the source agent"},
		// During the transfer.
		{name: "source-agent-killed-during-transfer", node: "h2", point: "source:transfer", action: "exit",
			endsOn: "h2", code: 1, says: "lost the source agent"},
		{name: "destination-agent-killed-during-transfer", node: "h3", point: "dest:receiving", action: "exit",
			endsOn: "h2", code: 1, says: "runs on h2 again with its state"},
		{name: "destination-tmpfs-full", node: "h3", point: "dest:receiving", action: "nospc",
			endsOn: "h2", code: 1, says: "no space left on device"},
		{name: "cli-interrupted-during-transfer", node: "h2", point: "source:transfer", action: "hold",
			strike: func(t *testing.T, cli *exec.Cmd) func() { _ = cli.Process.Kill(); return nil },
			endsOn: "h3", code: -1},
		// During the restore.
		{name: "destination-engine-stopped-during-restore", node: "h3", point: "dest:restoring", action: "hold",
			strike: func(t *testing.T, _ *exec.Cmd) func() {
				sim(t, "stop-engine", "h3")
				return func() { startEngine(t, "h3") }
			},
			endsOn: "h2", code: 1, says: "h2 again with its state"},
		// After the restore, before the commit: the destination's copy is
		// fenced, the source decides abort.
		{name: "destination-agent-killed-after-restore", node: "h3", point: "dest:restored", action: "exit",
			endsOn: "h2", code: 1, says: "migration to h3 failed"},
		{name: "source-agent-killed-after-restore", node: "h2", point: "source:restored", action: "exit",
			endsOn: "h2", code: 1, says: "lost the source agent"},
		{name: "link-cut-after-restore-reply-lost", node: "h3", point: "dest:restored", action: "hold",
			strike: func(t *testing.T, _ *exec.Cmd) func() {
				heal := cutLink(t, "h3", "h2", false)
				clearFaults("h3")
				time.Sleep(50 * time.Second) // past the source's wait for the answer (restoreTimeout)
				return heal
			},
			endsOn: "h2", code: 1, says: "migration to h3 failed"},
		// The source's engine stopped: its frozen copy dies with it.
		{name: "source-engine-stopped-during-transfer", node: "h2", point: "source:transfer", action: "hold",
			strike: func(t *testing.T, _ *exec.Cmd) func() {
				sim(t, "stop-engine", "h2")
				return func() { startEngine(t, "h2") }
			},
			// The agent outlives its engine: it aborts, and thaws the
			// container from its images once the engine is back.
			// (Once in two CI runs of three, the killed engine left the
			// overlay's vxlan interface behind and the next one could
			// attach nothing there: the simulator removes it now, see
			// start_engine in test/sim/sim.sh.)
			endsOn: "h2", code: 1, says: "migration to h3 failed"},
		{name: "source-engine-stopped-after-restore", node: "h2", point: "source:restored", action: "hold",
			strike: func(t *testing.T, _ *exec.Cmd) func() {
				sim(t, "stop-engine", "h2")
				return func() { startEngine(t, "h2") }
			},
			// The decision needs no engine: committed, the copy here is
			// removed once the engine is back.
			endsOn: "h3", code: 0, says: "migrated"},
		// After the commit, before the source's cleanup.
		{name: "source-agent-killed-after-commit", node: "h2", point: "source:committed", action: "exit",
			endsOn: "h3", code: 1, says: "lost the source agent"},
		{name: "link-cut-after-commit", node: "h2", point: "source:committed", action: "hold",
			strike: func(t *testing.T, _ *exec.Cmd) func() {
				heal := cutLink(t, "h2", "h3", true)
				clearFaults("h2")
				return func() { time.Sleep(10 * time.Second); heal() }
			},
			endsOn: "h3", code: 0, says: "fenced until its agent learns"},
		{name: "source-agent-killed-before-cleanup", node: "h2", point: "source:cleanup", action: "exit",
			endsOn: "h3", code: 1, says: "lost the source agent"},
	}
	if only := os.Getenv("FLEET_FAULTS_ONLY"); only != "" {
		var keep []faultCase
		for _, c := range cases {
			if strings.Contains(c.name, only) {
				keep = append(keep, c)
			}
		}
		cases = keep
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.flaky != "" && os.Getenv("FLEET_FAULTS_FLAKY") == "" {
				t.Skipf("flaky, left out (FLEET_FAULTS_FLAKY=1 runs it): %s", c.flaky)
			}
			svc := "flt" + string(rune('a'+i))
			fleetCmd(t, "rm", svc) // left by an earlier run
			removeServices(t, svc)
			name, ip, st0 := faultSubject(t, svc, "h2")
			setFaults(t, c.node, c.point+" "+c.action)
			cli, wait := migrateAsync(t, name, "--to", "h3")
			var after func()
			if c.strike != nil {
				waitHeld(t, c.node, c.point)
				after = c.strike(t, cli)
				clearFaults(c.node)
			}
			r := wait()
			t.Logf("migrate exited %d:\n%s", r.Code, r.Stderr)
			clearFaults(c.node)
			if after != nil {
				after()
			}
			if c.code >= 0 {
				assert.Check(t, is.Equal(r.Code, c.code), r.String())
				assert.Check(t, is.Contains(r.Stderr+r.Stdout, c.says))
			}
			if c.unfrozen {
				assert.Check(t, !strings.Contains(r.Stderr, "checkpoint:"), "the container was frozen:\n%s", r.Stderr)
			}
			host := settled(t, name, ip, st0)
			assert.Check(t, is.Equal(host, c.endsOn), "%s ends on %s", name, host)
			removeServices(t, svc)
		})
	}
}

// TestFaultsRmDuringMigration: rm and resize of a container a migration
// holds are refused with a clear message, and nothing changes.
func TestFaultsRmDuringMigration(t *testing.T) {
	initFleet(t)
	svc := "fltrm"
	removeServices(t, svc)
	name, ip, st0 := faultSubject(t, svc, "h2")
	setFaults(t, "h2", "source:transfer hold")
	_, wait := migrateAsync(t, name, "--to", "h3")
	waitHeld(t, "h2", "source:transfer")
	rm := fleetCmd(t, "rm", name)
	resize := fleetCmd(t, "resize", name, "--memory", "600m")
	clearFaults("h2")
	r := wait()
	assert.Check(t, is.Equal(r.Code, 0), r.String())
	assert.Check(t, rm.Code != 0, "rm during the migration: %s", rm)
	assert.Check(t, is.Contains(rm.Stderr, "cannot be removed on h2 now: migration"))
	assert.Check(t, resize.Code != 0, "resize during the migration: %s", resize)
	assert.Check(t, is.Contains(resize.Stderr, "cannot be resized on h2 now: migration"))
	assert.Check(t, is.Equal(settled(t, name, ip, st0), "h3"))
	removeServices(t, svc)
}

// TestFaultsRoundTrip moves one container h1 → h2 → h3 → h1 under polling:
// its state intact each time, the poller's connection kept, and nothing of
// the migrations left anywhere.
func TestFaultsRoundTrip(t *testing.T) {
	initFleet(t)
	svc := "fltround"
	removeServices(t, svc)
	name, ip, st0 := faultSubject(t, svc, "h1")
	stop := poller(t, "h2", ip)
	for _, to := range []string{"h2", "h3", "h1"} {
		r := fleetCmd(t, "migrate", name, "--to", to)
		assert.Assert(t, r.Code == 0, r.String())
		st := ask(t, "h2", ip)
		assert.Check(t, st.Counter >= st0.Counter, "to %s: counter went back", to)
		assert.Check(t, st.BallastOK != nil && *st.BallastOK, "to %s: ballast", to)
		assert.Check(t, is.Equal(st.Birth, st0.Birth), "to %s: first-start file", to)
		c, ok := containerOn(t, name)
		assert.Check(t, ok && c.Host == to, "after the move to %s it is on %s", to, c.Host)
		st0 = st
	}
	poll := stop()
	t.Logf("poller: %+v", poll)
	assert.Check(t, !poll.WentBack, "the counter went back")
	assert.Check(t, is.Equal(poll.Dials, 1), "the poller's TCP connection did not survive: %+v", poll)
	assert.Check(t, is.Equal(settled(t, name, ip, st0), "h1"))
	removeServices(t, svc)
}

// TestFaultsConcurrentScale: two `scale S=+2` at once from two processes
// make four new replicas with four distinct names.
func TestFaultsConcurrentScale(t *testing.T) {
	initFleet(t)
	svc := "fltscale"
	removeServices(t, svc)
	mustFleet(t, "create", "--name", svc, "--image", workload, "--memory", "64m")
	var waits []func() result
	for i := 0; i < 2; i++ {
		_, wait := fleetAsync(t, "scale", svc+"=+2")
		waits = append(waits, wait)
	}
	for _, w := range waits {
		r := w()
		assert.Check(t, is.Equal(r.Code, 0), r.String())
	}
	names := map[string]int{}
	for _, c := range ofService(engineContainers(t), svc) {
		names[c.Name]++
	}
	assert.Check(t, is.Len(names, 5), "replicas: %v", names)
	for n, k := range names {
		assert.Check(t, is.Equal(k, 1), "%s exists %d times", n, k)
	}
	removeServices(t, svc)
}

// TestFaultsDetachAndFollow: Ctrl-C detaches the CLI from a migration,
// which goes on; --follow shows how it ends and records it.
func TestFaultsDetachAndFollow(t *testing.T) {
	initFleet(t)
	svc := "fltfollow"
	removeServices(t, svc)
	name, ip, st0 := faultSubject(t, svc, "h2")
	setFaults(t, "h2", "source:transfer hold")
	cli, wait := migrateAsync(t, name, "--to", "h3")
	waitHeld(t, "h2", "source:transfer")
	assert.NilError(t, cli.Process.Signal(os.Interrupt))
	r := wait()
	clearFaults("h2")
	t.Logf("interrupted: exit %d\n%s", r.Code, r.Stderr)
	assert.Check(t, is.Equal(r.Code, 130), r.String())
	assert.Check(t, is.Contains(r.Stderr, "detached from migration"))
	var id string
	for _, l := range strings.Split(r.Stderr, "\n") {
		if rest, ok := strings.CutPrefix(l, "start: migration "); ok {
			id, _, _ = strings.Cut(rest, " ")
		}
	}
	assert.Assert(t, id != "", "no migration id in:\n%s", r.Stderr)
	f := fleetCmd(t, "migrate", "--follow", id)
	assert.Check(t, is.Equal(f.Code, 0), f.String())
	assert.Check(t, is.Contains(f.Stdout, "migrated "+name+" from h2 to h3"))
	assert.Check(t, is.Equal(settled(t, name, ip, st0), "h3"))
	hist := mustFleet(t, "describe", name)
	assert.Check(t, is.Contains(hist, "from h2 to h3"), "the followed migration is recorded")
	removeServices(t, svc)
}

// TestFaultsGuardDuringMigration: with --guard, the source's engine refuses
// to stop, kill, pause, checkpoint or remove a container a migration holds,
// naming the migration; the migration then ends as if nothing was asked.
func TestFaultsGuardDuringMigration(t *testing.T) {
	initFleet(t)
	svc := "fltguard"
	removeServices(t, svc)
	guardOn(t)
	name, ip, st0 := faultSubject(t, svc, "h2")
	setFaults(t, "h2", "source:transfer hold")
	_, wait := migrateAsync(t, name, "--to", "h3")
	waitHeld(t, "h2", "source:transfer")
	for _, args := range [][]string{
		{"stop", name}, {"kill", name}, {"pause", name}, {"rm", "-f", name},
		{"checkpoint", "create", name, "guarded"},
	} {
		r := docker(t, "h2", args...)
		assert.Check(t, r.Code != 0, "%v during the migration: %s", args, r)
		assert.Check(t, is.Contains(r.Stderr, "authorization denied by plugin fleet-agent:latest: "+name+" is held by docker fleet (migration "), "%v", args)
	}
	clearFaults("h2")
	r := wait()
	assert.Check(t, is.Equal(r.Code, 0), r.String())
	assert.Check(t, is.Equal(settled(t, name, ip, st0), "h3"))
	removeServices(t, svc)
}

// TestFaultsAutoRebalance strikes at a move the leader's agent started on
// its own (init --rebalance-every): the source agent killed while it
// streams the replica. The replica stays whole on its node, and a later
// interval moves what the plan still wants moved; in the end every
// replica runs once, with its state, spread.
func TestFaultsAutoRebalance(t *testing.T) {
	initFleet(t)
	svc := "fltauto"
	removeServices(t, svc)
	t.Cleanup(func() {
		fleetCmd(t, "activate", "h1", "h3")
		fleetCmd(t, "init", "--rebalance-every", "0")
		removeServices(t, svc)
	})
	mustFleet(t, "drain", "h1")
	mustFleet(t, "drain", "h3")
	mustFleet(t, "create", "--name", svc, "--image", workload, "--replicas", "3", "--memory", "64m", "-e", "BALLAST_MB=8")
	assert.Assert(t, is.DeepEqual(replicasPerHost(t, svc), map[string]int{"h2": 3}))
	ips := map[string]string{}
	before := map[string]workloadState{}
	for _, c := range ofService(engineContainers(t), svc) {
		ips[c.Name] = fleetIP(t, c.Name)
		before[c.Name] = ask(t, "h2", ips[c.Name]) // a drained node attaches nothing to the overlay
	}
	mustFleet(t, "activate", "h1", "h3")

	setFaults(t, "h2", "source:transfer hold")
	mustFleet(t, "init", "--rebalance-every", "10s", "--rebalance-max-moves", "1")
	waitHeld(t, "h2", "source:transfer")
	assert.NilError(t, syscall.Kill(agentPid(t, "h2"), syscall.SIGKILL))
	clearFaults("h2")

	spread := func(n map[string]int) bool { return n["h1"] == 1 && n["h2"] == 1 && n["h3"] == 1 }
	deadline := time.Now().Add(3 * time.Minute)
	for !spread(replicasPerHost(t, svc)) && time.Now().Before(deadline) {
		time.Sleep(2 * time.Second)
	}
	assert.Check(t, spread(replicasPerHost(t, svc)), "%v", replicasPerHost(t, svc))
	for name, ip := range ips {
		settled(t, name, ip, before[name])
	}
}
