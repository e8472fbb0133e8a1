//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/cpuset"
)

const workload = "fleet-workload:latest"

// engineContainer is a fleet container as its engine reports it.
type engineContainer struct {
	Host   string
	Name   string
	Config struct {
		Image  string
		Env    []string
		Labels map[string]string
	}
	State struct {
		Pid       int
		StartedAt string
		Running   bool
	}
	HostConfig struct {
		CpusetCpus   string
		Memory       int64
		PortBindings map[string][]struct{ HostPort string }
	}
}

// fleetHosts are the hosts in the fleet's swarm.
func fleetHosts(t *testing.T) []string {
	t.Helper()
	var hosts []string
	for h := range swarmNodes(t) {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	return hosts
}

// engineContainers reads the fleet containers straight from every engine.
func engineContainers(t *testing.T) []engineContainer {
	t.Helper()
	var out []engineContainer
	for _, h := range fleetHosts(t) {
		cs := hostContainers(t, h)
		for i := range cs {
			cs[i].Host = h
			cs[i].Name = strings.TrimPrefix(cs[i].Name, "/")
		}
		out = append(out, cs...)
	}
	return out
}

// hostContainers are host h's fleet containers. A container removed
// between the listing and the inspect (a migration's source copy going)
// makes it list again.
func hostContainers(t *testing.T, h string) []engineContainer {
	t.Helper()
	for attempt := 0; ; attempt++ {
		ids := strings.Fields(mustDocker(t, h, "ps", "-aq", "--filter", "label=com.docker.fleet.service"))
		if len(ids) == 0 {
			return nil
		}
		r := docker(t, h, append([]string{"inspect"}, ids...)...)
		if r.Code != 0 && attempt < 5 {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		assert.Assert(t, r.Code == 0, r.String())
		var cs []engineContainer
		assert.NilError(t, json.Unmarshal([]byte(r.Stdout), &cs))
		return cs
	}
}

func ofService(cs []engineContainer, svc string) []engineContainer {
	var out []engineContainer
	for _, c := range cs {
		if c.Config.Labels["com.docker.fleet.service"] == svc {
			out = append(out, c)
		}
	}
	return out
}

// assertDisjointCores checks, host by host, that no core is held by two
// fleet containers pinned to exclusive cores.
func assertDisjointCores(t *testing.T, cs []engineContainer) {
	t.Helper()
	owner := map[string]string{}
	for _, c := range cs {
		if c.Config.Labels["com.docker.fleet.exclusive"] != "true" {
			continue
		}
		set, err := cpuset.Parse(c.HostConfig.CpusetCpus)
		assert.NilError(t, err)
		for _, core := range set {
			key := fmt.Sprintf("%s/%d", c.Host, core)
			assert.Check(t, owner[key] == "", "core %s held by %s and %s", key, owner[key], c.Name)
			owner[key] = c.Name
		}
	}
}

func fleetCmd(t *testing.T, args ...string) result {
	t.Helper()
	return docker(t, manager, append([]string{"fleet"}, args...)...)
}

func mustFleet(t *testing.T, args ...string) string {
	t.Helper()
	r := fleetCmd(t, args...)
	assert.Assert(t, r.Code == 0, "docker fleet %v\n%s", args, r)
	return r.Stdout
}

// removeServices cleans up after a test, freeing the cores.
func removeServices(t *testing.T, names ...string) {
	t.Cleanup(func() {
		for _, n := range names {
			fleetCmd(t, "rm", n)
		}
	})
}

func TestCreatePinsExclusiveCores(t *testing.T) {
	initFleet(t)
	removeServices(t, "web")
	out := mustFleet(t, "create", "--name", "web", "--image", workload, "--replicas", "3", "--cpus", "1", "--memory", "64m")
	assert.Check(t, is.Contains(out, "NAME"))
	assert.Check(t, is.Contains(out, "web.3"))

	all := engineContainers(t)
	web := ofService(all, "web")
	assert.Assert(t, is.Len(web, 3))
	for _, c := range web {
		set, err := cpuset.Parse(c.HostConfig.CpusetCpus)
		assert.NilError(t, err)
		assert.Check(t, is.Len(set, 1), "%s on %s: cpuset %q", c.Name, c.Host, c.HostConfig.CpusetCpus)
		assert.Check(t, is.Equal(c.HostConfig.Memory, int64(64<<20)), c.Name)
		assert.Check(t, c.State.Running, c.Name)
	}
	assertDisjointCores(t, all)

	// Spread: three replicas on three different hosts.
	hosts := map[string]bool{}
	for _, c := range web {
		hosts[c.Host] = true
	}
	assert.Check(t, is.Len(hosts, 3))
}

func TestScaleFollowsOnTheEngines(t *testing.T) {
	initFleet(t)
	removeServices(t, "web")
	mustFleet(t, "create", "--name", "web", "--image", workload, "--replicas", "3", "--cpus", "1", "--memory", "64m")
	// Three nodes of two cores, one of each shared: three replicas at most.
	for _, n := range []int{3, 2, 0, 1} {
		mustFleet(t, "scale", fmt.Sprintf("web=%d", n))
		all := engineContainers(t)
		assert.Check(t, is.Len(ofService(all, "web"), n), "after scale web=%d", n)
		assertDisjointCores(t, all)
	}
	var svc struct {
		Desired int `json:"desired"`
		Running int `json:"running"`
	}
	assert.NilError(t, json.Unmarshal([]byte(mustFleet(t, "describe", "web", "--format", "json")), &svc))
	assert.Check(t, is.Equal(svc.Desired, 1))
	assert.Check(t, is.Equal(svc.Running, 1))
}

func TestResizeInPlace(t *testing.T) {
	initFleet(t)
	removeServices(t, "rsz")
	mustFleet(t, "create", "--name", "rsz", "--image", workload, "--cpus", "1", "--memory", "64m")
	before := ofService(engineContainers(t), "rsz")[0]

	mustFleet(t, "resize", "rsz.1", "--memory", "96m")
	after := ofService(engineContainers(t), "rsz")[0]
	assert.Check(t, is.Equal(after.HostConfig.Memory, int64(96<<20)))
	assert.Check(t, is.Equal(after.State.Pid, before.State.Pid))
	assert.Check(t, is.Equal(after.State.StartedAt, before.State.StartedAt))

	// Onto another core of the same node: one that is free there.
	held := cpuset.Set{}
	for _, c := range engineContainers(t) {
		if c.Host == before.Host && c.Config.Labels["com.docker.fleet.exclusive"] == "true" {
			s, _ := cpuset.Parse(c.HostConfig.CpusetCpus)
			held = append(held, s...)
		}
	}
	free := cpuset.Of(0, 1).Minus(cpuset.Of(held...))
	if len(free) == 0 {
		t.Skipf("no free core on %s to move to", before.Host)
	}
	target := fmt.Sprint(free[0])
	mustFleet(t, "resize", "rsz.1", "--cpuset-cpus", target)
	moved := ofService(engineContainers(t), "rsz")[0]
	assert.Check(t, is.Equal(moved.HostConfig.CpusetCpus, target))
	assert.Check(t, moved.HostConfig.CpusetCpus != before.HostConfig.CpusetCpus)
	assert.Check(t, is.Equal(moved.State.Pid, before.State.Pid))
	assert.Check(t, is.Equal(moved.State.StartedAt, before.State.StartedAt))
	assertDisjointCores(t, engineContainers(t))

	// --cpus re-pins to that many cores, keeping the one it has.
	mustFleet(t, "resize", "rsz.1", "--cpus", "1")
	assert.Check(t, is.Equal(ofService(engineContainers(t), "rsz")[0].HostConfig.CpusetCpus, target))

	// Below what it uses: refused with the figures, nothing changes.
	r := fleetCmd(t, "resize", "rsz.1", "--memory", "7m")
	assert.Check(t, is.Equal(r.Code, 1), r.String())
	assert.Check(t, is.Contains(r.Stderr, "memory 7MiB is below what rsz.1 uses now ("))
	assert.Check(t, is.Equal(ofService(engineContainers(t), "rsz")[0].HostConfig.Memory, int64(96<<20)))
}

func TestCreateFromFiles(t *testing.T) {
	initFleet(t)
	removeServices(t, "cmp", "task1", "gen", "joba", "jobb")
	dir := t.TempDir()
	compose := filepath.Join(dir, "compose.yaml")
	assert.NilError(t, os.WriteFile(compose, []byte(`
services:
  cmp:
    image: fleet-workload:latest
    environment: {BALLAST_MB: "4", FROM: compose}
    ports: ["18081:8080"]
    cpuset: "1"
    mem_limit: 48m
    deploy:
      placement: {constraints: ["node.hostname==h2"]}
`), 0o644))
	mustFleet(t, "create", "-f", compose)

	task := filepath.Join(dir, "task.json")
	assert.NilError(t, os.WriteFile(task, []byte(`{"node": "h3", "container_name": "task1", "image": "fleet-workload:latest",
		"detach": true, "network": "fleet", "cpuset_cpus": "1", "mem_limit": "40m",
		"ports": {"8080/tcp": 18082}, "environment": {"FROM": "task"}}`), 0o644))
	mustFleet(t, "create", "-f", task)

	job := filepath.Join(dir, "job.json")
	assert.NilError(t, os.WriteFile(job, []byte(`{"job_name": "j1", "job_info": {"network": {"name": "fleet", "driver": "overlay", "subnet": "`+subnet+`"},
		"tasks": {"joba": {"node": "h1", "container_name": "joba", "image": "fleet-workload:latest", "mem_limit": "32m", "environment": ["FROM=job"]},
		          "jobb": {"node": "h1", "container_name": "jobb", "image": "fleet-workload:latest", "mem_limit": "32m"}}}}`), 0o644))
	mustFleet(t, "create", "-f", job)

	// Genisys, from standard input.
	cmd := `docker --context ` + manager + ` fleet create -f - <<'EOF'
{"name": "gen", "image": "fleet-workload:latest", "environment": {"FROM": "genisys"}, "ports": ["18083"]}
EOF`
	r := run(t, "bash", "-c", cmd)
	assert.Assert(t, r.Code == 0, r.String())

	all := engineContainers(t)
	byName := map[string]engineContainer{}
	for _, c := range all {
		byName[c.Name] = c
	}
	check := func(name, host, cpus string, mem int64, env, port string) {
		t.Helper()
		c, ok := byName[name]
		assert.Assert(t, ok, "no %s on any engine", name)
		assert.Check(t, is.Equal(c.Host, host), name)
		assert.Check(t, is.Equal(c.HostConfig.CpusetCpus, cpus), name)
		assert.Check(t, is.Equal(c.HostConfig.Memory, mem), name)
		if env != "" {
			assert.Check(t, is.Contains(c.Config.Env, env), name)
		}
		if port != "" {
			b := c.HostConfig.PortBindings["8080/tcp"]
			if name == "gen.1" {
				b = c.HostConfig.PortBindings[port+"/tcp"]
			}
			assert.Check(t, len(b) == 1 && b[0].HostPort == port, "%s ports %v", name, c.HostConfig.PortBindings)
		}
	}
	check("cmp.1", "h2", "1", 48<<20, "FROM=compose", "18081")
	check("task1.1", "h3", "1", 40<<20, "FROM=task", "18082")
	check("joba.1", "h1", "", 32<<20, "FROM=job", "")
	check("jobb.1", "h1", "", 32<<20, "", "")
	assertDisjointCores(t, all)
	_, ok := byName["gen.1"]
	assert.Check(t, ok)
	if ok {
		check("gen.1", byName["gen.1"].Host, "", 0, "FROM=genisys", "18083")
	}
}

func TestConcurrentCreatesNeverDoubleBook(t *testing.T) {
	initFleet(t)
	const n = 10
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("race%d", i)
	}
	removeServices(t, names...)
	freeBefore := 0
	for _, h := range fleetHosts(t) {
		n, err := strconv.Atoi(mustDocker(t, h, "info", "--format", "{{.NCPU}}"))
		assert.NilError(t, err)
		freeBefore += n - 1 // one stays shared
	}
	for _, c := range engineContainers(t) {
		if c.Config.Labels["com.docker.fleet.exclusive"] == "true" {
			s, _ := cpuset.Parse(c.HostConfig.CpusetCpus)
			freeBefore -= len(s)
		}
	}

	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range n {
		wg.Go(func() {
			results[i] = fleetCmd(t, "create", "--name", names[i], "--image", workload, "--cpus", "1", "--memory", "16m")
		})
	}
	wg.Wait()

	ok := 0
	for i, r := range results {
		if r.Code == 0 {
			ok++
			continue
		}
		assert.Check(t, is.Equal(r.Code, 1), "%s: %s", names[i], r)
		assert.Check(t, strings.Contains(r.Stderr, "cores free") || strings.Contains(r.Stderr, "can be held exclusively"), "%s: %s", names[i], r)
	}
	all := engineContainers(t)
	assertDisjointCores(t, all)
	created := 0
	for _, name := range names {
		created += len(ofService(all, name))
	}
	assert.Check(t, is.Equal(created, ok), "containers on the engines against creates that said yes")
	assert.Check(t, is.Equal(ok, min(n, freeBefore)), "every free core should have been used, none twice")
}

func TestBadInputChangesNothing(t *testing.T) {
	initFleet(t)
	dir := t.TempDir()
	noImage := filepath.Join(dir, "noimage.json")
	assert.NilError(t, os.WriteFile(noImage, []byte(`{"name": "bad"}`), 0o644))
	malformed := filepath.Join(dir, "malformed.json")
	assert.NilError(t, os.WriteFile(malformed, []byte(`{"container_name": "bad", "image": `), 0o644))
	composeNoImage := filepath.Join(dir, "compose.yaml")
	assert.NilError(t, os.WriteFile(composeNoImage, []byte("services:\n  bad:\n    command: [x]\n"), 0o644))

	before := len(engineContainers(t))
	configsBefore := mustDocker(t, manager, "config", "ls", "-q")
	base := []string{"create", "--name", "bad", "--image", workload}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append(base, "--cpuset-cpus", "0-999"), "cpuset-cpus 0-999: no node has core"},
		{append(base, "--memory", "12q"), `--memory: "12q" is not a size`},
		{append(base, "--node", "h9"), `node "h9": no such node in the fleet`},
		{append(base, "--cpus", "99"), "cpus 99: no node has that many cores"},
		{append(base, "--cpus", "1", "--cpuset-cpus", "0"), "--cpus and --cpuset-cpus"},
		{append(base, "--strategy", "pack"), `--strategy: "pack"`},
		{append(base, "-p", "99999:80"), `--publish "99999:80"`},
		{[]string{"create", "--name", "bad.1", "--image", workload}, "--name: \"bad.1\" is not a valid service name"},
		{[]string{"create", "-f", noImage}, "noimage.json: image: missing"},
		{[]string{"create", "-f", composeNoImage}, "services.bad.image: missing"},
		{[]string{"create", "-f", malformed}, "malformed.json: malformed JSON"},
		{[]string{"scale", "nosuch=2"}, "service nosuch: no such service"},
		{[]string{"scale", "web"}, `"web": use SERVICE=REPLICAS`},
		{[]string{"resize", "nosuch.1", "--memory", "64m"}, `no service or container named "nosuch.1"`},
		{[]string{"resize", "x", "--memory", "12q"}, `--memory: "12q" is not a size`},
		{[]string{"rm", "nosuch"}, `no service or container named "nosuch"`},
	} {
		r := fleetCmd(t, tc.args...)
		assert.Check(t, is.Equal(r.Code, 1), "%v: %s", tc.args, r)
		assert.Check(t, is.Contains(r.Stderr, "docker fleet "+tc.args[0]+": "), "%v", tc.args)
		assert.Check(t, is.Contains(r.Stderr, tc.want), "%v: %s", tc.args, r)
	}
	assert.Check(t, is.Equal(len(engineContainers(t)), before))
	assert.Check(t, is.Equal(mustDocker(t, manager, "config", "ls", "-q"), configsBefore))
}

func TestRmReleasesCores(t *testing.T) {
	initFleet(t)
	removeServices(t, "gone")
	mustFleet(t, "create", "--name", "gone", "--image", workload, "--replicas", "2", "--cpus", "1")
	assert.Check(t, is.Len(ofService(engineContainers(t), "gone"), 2))

	mustFleet(t, "rm", "gone.2")
	assert.Check(t, is.Len(ofService(engineContainers(t), "gone"), 1))
	var svc struct {
		Desired int `json:"desired"`
	}
	assert.NilError(t, json.Unmarshal([]byte(mustFleet(t, "describe", "gone", "--format", "json")), &svc))
	assert.Check(t, is.Equal(svc.Desired, 1))

	mustFleet(t, "rm", "gone")
	assert.Check(t, is.Len(ofService(engineContainers(t), "gone"), 0))
	r := fleetCmd(t, "describe", "gone")
	assert.Check(t, is.Equal(r.Code, 1))
	assert.Check(t, !strings.Contains(mustDocker(t, manager, "config", "ls"), "docker-fleet-service.gone"))

	// Its cores are free again: the node ledgers hold none for it.
	for _, h := range fleetHosts(t) {
		var v struct {
			Ledger struct {
				Held []struct{ Container string } `json:"held"`
			} `json:"ledger"`
		}
		assert.NilError(t, json.Unmarshal([]byte(mustFleet(t, "describe", h, "--format", "json")), &v))
		for _, hd := range v.Ledger.Held {
			assert.Check(t, !strings.HasPrefix(hd.Container, "gone."), "%s still holds a core on %s", hd.Container, h)
		}
	}
}

func TestDescribeContainer(t *testing.T) {
	initFleet(t)
	removeServices(t, "desc")
	mustFleet(t, "create", "--name", "desc", "--image", workload, "--cpus", "1", "--memory", "64m")
	var c struct {
		Name        string `json:"name"`
		Node        string `json:"node"`
		State       string `json:"state"`
		Cpuset      string `json:"cpuset"`
		Memory      int64  `json:"memory"`
		MemoryUsage int64  `json:"memoryUsage"`
		IP          string `json:"ip"`
	}
	assert.NilError(t, json.Unmarshal([]byte(mustFleet(t, "describe", "desc.1", "--format", "json")), &c))
	e := ofService(engineContainers(t), "desc")[0]
	assert.Check(t, is.Equal(c.Node, e.Host))
	assert.Check(t, is.Equal(c.State, "running"))
	assert.Check(t, is.Equal(c.Cpuset, e.HostConfig.CpusetCpus))
	assert.Check(t, is.Equal(c.Memory, int64(64<<20)))
	assert.Check(t, c.MemoryUsage > 0)
	assert.Check(t, strings.HasPrefix(c.IP, "10.215.0."), c.IP)

	ledger := mustFleet(t, "describe", e.Host)
	assert.Check(t, is.Contains(ledger, "desc.1"), "the node's core ledger names the holder")
}
