//go:build servers

// Package servers migrates real servers, built from Debian's packages, live
// under the load of their own clients: the real docker CLI with the installed
// fleet plugin against the simulator's engines, real CRIU. `make servers`
// brings up a fresh simulator, makes the image (images.sh) and runs it.
//
// Every server runs on h2 and moves to h3 in the middle of its load; the
// load client runs in a container on h1, on the fleet network.
package servers

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/test/testkit"
)

const (
	manager = "h1"
	subnet  = "10.215.0.0/24" // as the e2e tests: init is idempotent only with the same one
	// The image of servers and clients (images.sh) and the simulator's own.
	serversImage  = "fleet-servers:latest"
	workloadImage = "fleet-workload:latest"
	// Where servers start, where they move, where their load comes from.
	source     = "h2"
	dest       = "h3"
	clientHost = "h1"
)

var hosts = []string{"h1", "h2", "h3"}

type result = testkit.Result

// docker runs the docker CLI against the engine of context ctxName.
func docker(t *testing.T, ctxName string, args ...string) result {
	t.Helper()
	return testkit.Docker(t, ctxName, args...)
}

// mustDocker is docker that fails the test on a non-zero exit.
func mustDocker(t *testing.T, ctxName string, args ...string) string {
	t.Helper()
	return testkit.MustDocker(t, ctxName, args...)
}

func fleet(t *testing.T, args ...string) result {
	t.Helper()
	return docker(t, manager, append([]string{"fleet"}, args...)...)
}

func mustFleet(t *testing.T, args ...string) string {
	t.Helper()
	r := fleet(t, args...)
	assert.Assert(t, r.Code == 0, "docker fleet %v\n%s", args, r)
	return strings.TrimSpace(r.Stdout)
}

var setupOnce struct {
	sync.Once
	err string
}

// setup makes sure of the fleet (init is idempotent) and of the image on
// every host, once per run.
func setup(t *testing.T) {
	t.Helper()
	setupOnce.Do(func() {
		for _, h := range hosts {
			for _, img := range []string{serversImage, workloadImage} {
				if r := docker(t, h, "image", "inspect", "-f", "{{.Id}}", img); r.Code != 0 {
					setupOnce.err += fmt.Sprintf("%s lacks %s (make servers, or test/servers/images.sh load %s)\n", h, img, h)
				}
			}
		}
		if setupOnce.err != "" {
			return
		}
		// The simulator's workload image must be this tree's (with the
		// memcache and beanstalk clients), not an older build's.
		if r := docker(t, clientHost, "run", "--rm", workloadImage, "memcache"); !strings.Contains(r.Stdout+r.Stderr, "HOST:PORT N RATE") {
			setupOnce.err = workloadImage + " has no memcache client: bring the simulator up with SIM_WORKLOAD=bin/workload of this tree\n" + r.String()
			return
		}
		r := fleet(t, "init", "--subnet", subnet, "--worker", "h2", "--worker", "h3")
		if r.Code != 0 {
			setupOnce.err = "fleet init: " + r.String()
		}
	})
	if setupOnce.err != "" {
		t.Fatal(setupOnce.err)
	}
}

// createServer creates service svc (one replica on the source host) running
// fleet-serve with args, with named volumes ("NAME:/path"), and returns its
// fleet IP. Cleanup removes the service and its volumes.
func createServer(t *testing.T, svc string, volumes []string, args ...string) string {
	t.Helper()
	setup(t)
	cleanup := func() {
		fleet(t, "rm", svc)
		for _, h := range hosts {
			for _, v := range volumes {
				name, _, _ := strings.Cut(v, ":")
				docker(t, h, "volume", "rm", "-f", name)
			}
		}
	}
	cleanup() // what a killed run left
	t.Cleanup(func() {
		if t.Failed() {
			// The server's own account, from wherever it runs now.
			if h := where(t, svc+".1"); h != "" {
				r := docker(t, h, "logs", "--tail", "30", svc+".1")
				t.Logf("last lines of %s.1's log on %s:\n%s%s", svc, h, r.Stdout, r.Stderr)
			}
		}
		cleanup()
	})
	create := []string{"create", "--name", svc, "--image", serversImage, "--node", source}
	for _, v := range volumes {
		create = append(create, "-v", v)
	}
	create = append(create, "--", "fleet-serve")
	mustFleet(t, append(create, args...)...)
	return strings.TrimSpace(mustFleet(t, "describe", svc+".1", "--format", "{{.IP}}"))
}

// client runs a shell script in a throwaway container of the servers' image
// on the client host and returns its output; it must succeed.
func client(t *testing.T, script string) string {
	t.Helper()
	r := docker(t, clientHost, "run", "--rm", "--network", "fleet", serversImage, "bash", "-c", script)
	assert.Assert(t, r.Code == 0, "client script:\n%s\n%s", script, r)
	return strings.TrimSpace(r.Stdout)
}

// waitReady runs a client script that retries until the server answers.
func waitReady(t *testing.T, check string) {
	t.Helper()
	client(t, "for i in $(seq 120); do "+check+" >/dev/null 2>&1 && exit 0; sleep 0.5; done; "+check)
}

// load is a load client running in a container on the client host.
type load struct {
	name string
	// What the container printed (stdout and stderr), its exit code and when
	// it ran, from its engine.
	Out, Stdout       string
	Code              int
	Started, Finished time.Time
}

func startLoad(t *testing.T, svc, image string, args ...string) *load {
	t.Helper()
	l := &load{name: "servers-load-" + svc}
	docker(t, clientHost, "rm", "-f", l.name)
	t.Cleanup(func() { docker(t, clientHost, "rm", "-f", l.name) })
	mustDocker(t, clientHost, append([]string{"run", "-d", "--name", l.name, "--network", "fleet", image}, args...)...)
	return l
}

// running says whether the load is still going.
func (l *load) running(t *testing.T) bool {
	return mustDocker(t, clientHost, "inspect", "-f", "{{.State.Running}}", l.name) == "true"
}

// wait waits for the load to end and reads what it printed.
func (l *load) wait(t *testing.T) {
	t.Helper()
	code := mustDocker(t, clientHost, "wait", l.name)
	l.Code, _ = strconv.Atoi(code)
	r := docker(t, clientHost, "logs", l.name)
	l.Out, l.Stdout = r.Stdout+r.Stderr, r.Stdout
	times := strings.Fields(mustDocker(t, clientHost, "inspect", "-f", "{{.State.StartedAt}} {{.State.FinishedAt}}", l.name))
	assert.Assert(t, len(times) == 2)
	var err error
	l.Started, err = time.Parse(time.RFC3339Nano, times[0])
	assert.NilError(t, err)
	l.Finished, err = time.Parse(time.RFC3339Nano, times[1])
	assert.NilError(t, err)
	t.Logf("load client (exit %d, %.1fs):\n%s", l.Code, l.Finished.Sub(l.Started).Seconds(), l.Out)
}

// spans checks that the load ran through the whole migration.
func (l *load) spans(t *testing.T, m migration) {
	t.Helper()
	assert.Check(t, l.Started.Before(m.Start) && l.Finished.After(m.End),
		"the load (%s … %s) did not run through the migration (%s … %s): make it longer",
		l.Started.Format(time.StampMilli), l.Finished.Format(time.StampMilli), m.Start.Format(time.StampMilli), m.End.Format(time.StampMilli))
}

type migration struct {
	Start, End time.Time
	Downtime   float64
	Bytes      int64
	Stderr     string
}

// migrate moves svc.1 from the source to the destination and checks that it
// ends there, running, alone.
func migrate(t *testing.T, svc string) migration {
	t.Helper()
	m := migration{Start: time.Now()}
	r := fleet(t, "migrate", svc+".1", "--to", dest, "--format", "json")
	m.End = time.Now()
	m.Stderr = r.Stderr
	if r.Code != 0 {
		note(t, "migration failed: "+lastLine(r.Stderr))
	}
	assert.Assert(t, r.Code == 0, "migrate %s.1:\n%s", svc, r)
	var res struct {
		From     string  `json:"from"`
		To       string  `json:"to"`
		Downtime float64 `json:"downtimeSeconds"`
		Bytes    int64   `json:"bytes"`
	}
	assert.NilError(t, json.Unmarshal([]byte(r.Stdout), &res), r.Stdout)
	assert.Check(t, is.Equal(res.From, source))
	assert.Check(t, is.Equal(res.To, dest))
	m.Downtime, m.Bytes = res.Downtime, res.Bytes
	t.Logf("migrated %s.1 from %s to %s in %.1fs: downtime %.2fs, %.1f MB", svc, source, dest, m.End.Sub(m.Start).Seconds(), m.Downtime, float64(m.Bytes)/1e6)
	assert.Check(t, is.Equal(where(t, svc+".1"), dest))
	assert.Check(t, is.Equal(mustDocker(t, dest, "inspect", "-f", "{{.State.Running}}", svc+".1"), "true"))
	// The restored container's network namespace, new on the destination,
	// has sent no reset: its address answered nothing before its sockets
	// were back (the fleet's CRIU locks it through the restore).
	if pid := mustDocker(t, dest, "inspect", "-f", "{{.State.Pid}}", svc+".1"); pid != "0" {
		rsts, ok := tcpOutRsts("/proc/" + pid + "/net/snmp")
		assert.Check(t, ok, "no TCP counters of %s.1", svc)
		assert.Check(t, is.Equal(rsts, int64(0)), "TCP resets sent from %s.1's network namespace on %s", svc, dest)
	}
	return m
}

// tcpOutRsts reads the Tcp OutRsts counter of a /proc/PID/net/snmp.
func tcpOutRsts(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i := range f {
			if i < len(names) && names[i] == "OutRsts" {
				n, err := strconv.ParseInt(f[i], 10, 64)
				return n, err == nil
			}
		}
	}
	return 0, false
}

// where names the one host whose engine has the container.
func where(t *testing.T, name string) string {
	t.Helper()
	var on []string
	for _, h := range hosts {
		if docker(t, h, "inspect", "-f", "{{.Id}}", name).Code == 0 {
			on = append(on, h)
		}
	}
	assert.Assert(t, len(on) <= 1, "%s exists on %v", name, on)
	if len(on) == 0 {
		return ""
	}
	return on[0]
}

type proc struct {
	UID  int
	Comm string
}

// processes lists the container's processes as its host sees them.
func processes(t *testing.T, host, name string) []proc {
	t.Helper()
	out := mustDocker(t, host, "top", name, "-eo", "pid,uid,comm")
	var ps []proc
	for _, line := range strings.Split(out, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		uid, err := strconv.Atoi(f[1])
		assert.NilError(t, err, out)
		ps = append(ps, proc{UID: uid, Comm: strings.Join(f[2:], " ")})
	}
	assert.Assert(t, len(ps) > 0, out)
	return ps
}

// runsAs checks that every process of the container whose command starts
// with comm runs as uid, and that there is one at least.
func runsAs(t *testing.T, host, name, comm string, uid int) {
	t.Helper()
	n := 0
	ps := processes(t, host, name)
	for _, p := range ps {
		if strings.HasPrefix(p.Comm, comm) {
			n++
			assert.Check(t, is.Equal(p.UID, uid), "%s on %s: %+v", name, host, ps)
		}
	}
	assert.Check(t, n > 0, "no %s process in %s on %s: %+v", comm, name, host, ps)
}

// uidIn reads a user's uid from the servers' image.
func uidIn(t *testing.T, user string) int {
	t.Helper()
	uid, err := strconv.Atoi(client(t, "id -u "+user))
	assert.NilError(t, err)
	return uid
}

// match returns the first group of re in out; the test fails without it.
func match(t *testing.T, out, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(out)
	assert.Assert(t, m != nil, "no %q in:\n%s", re, out)
	return m[1]
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	assert.NilError(t, err)
	return n
}

func atof(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	assert.NilError(t, err)
	return f
}

// row is one line of the summary printed after the run (and in the README).
type row struct {
	Server, Client, Load string
	StallMs              float64
	Downtime             float64
	MB                   float64
	Result               string
}

var summary struct {
	sync.Mutex
	rows   []*row
	byTest map[string]*row
}

// track adds the test's line to the summary; its outcome is filled in when
// the test ends.
func track(t *testing.T, server, client string) *row {
	t.Helper()
	r := &row{Server: server, Client: client}
	summary.Lock()
	summary.rows = append(summary.rows, r)
	if summary.byTest == nil {
		summary.byTest = map[string]*row{}
	}
	summary.byTest[t.Name()] = r
	summary.Unlock()
	t.Cleanup(func() {
		summary.Lock()
		defer summary.Unlock()
		r.Result = "PASS"
		if t.Failed() {
			r.Result = "FAIL"
		}
	})
	return r
}

// note says what happened in the test's line, unless it already does.
func note(t *testing.T, what string) {
	summary.Lock()
	defer summary.Unlock()
	if r := summary.byTest[t.Name()]; r != nil && r.Load == "" {
		r.Load = what
	}
}

// done fills in the test's line once its load has run.
func (r *row) done(t *testing.T, m migration, load string, stallMs float64) {
	t.Helper()
	summary.Lock()
	r.Load, r.StallMs, r.Downtime, r.MB = load, stallMs, m.Downtime, float64(m.Bytes)/1e6
	summary.Unlock()
	t.Logf("%s under %s: %s; longest stall %.0f ms; downtime %.2fs, %.1f MB", r.Server, r.Client, load, stallMs, r.Downtime, r.MB)
	// A client that sent requests all along waited through the freeze; one
	// that did not stall never met it.
	assert.Check(t, stallMs >= m.Downtime*1000/2, "the client's longest stall (%.0f ms) is under half the downtime (%.2fs): the load did not cross the freeze", stallMs, m.Downtime)
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func TestMain(m *testing.M) {
	code := m.Run()
	summary.Lock()
	rows := summary.rows
	summary.Unlock()
	if len(rows) > 0 {
		fmt.Println("\nreal servers migrated under load (" + source + " → " + dest + ", clients on " + clientHost + "):")
		w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "SERVER\tCLIENT\tLOAD\tLONGEST STALL\tDOWNTIME\tMOVED\tRESULT")
		for _, r := range rows {
			if r.Downtime == 0 {
				fmt.Fprintf(w, "%s\t%s\t%s\t-\t-\t-\t%s\n", r.Server, r.Client, r.Load, r.Result)
				continue
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%.2fs\t%.2fs\t%.0f MB\t%s\n", r.Server, r.Client, r.Load, r.StallMs/1000, r.Downtime, r.MB, r.Result)
		}
		w.Flush()
	}
	os.Exit(code)
}
