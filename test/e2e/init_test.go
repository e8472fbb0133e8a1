//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/pki"
)

// fleetView is the part of `describe --format json` the tests read.
type fleetView struct {
	Manager string `json:"manager"`
	Network struct {
		Name   string `json:"name"`
		Subnet string `json:"subnet"`
	} `json:"network"`
	Nodes []nodeView `json:"nodes"`
}

type nodeView struct {
	Hostname string       `json:"hostname"`
	Role     string       `json:"role"`
	State    string       `json:"state"`
	Info     *api.Info    `json:"info"`
	Metrics  *api.Metrics `json:"metrics"`
	Error    string       `json:"error"`
}

func describeFleet(t *testing.T) fleetView {
	t.Helper()
	var v fleetView
	assert.NilError(t, json.Unmarshal([]byte(mustDocker(t, manager, "fleet", "describe", "--format", "json")), &v))
	return v
}

// engineState is what init leaves on the engines, read through each engine
// directly: it must not move when init runs again.
func engineState(t *testing.T, hosts ...string) map[string]string {
	t.Helper()
	s := map[string]string{
		"network": mustDocker(t, manager, "network", "inspect", "fleet", "--format", "{{.ID}}"),
		"ca":      mustDocker(t, manager, "config", "inspect", "docker-fleet-ca", "--format", "{{.ID}}"),
		"nodes":   mustDocker(t, manager, "node", "ls", "-q"),
	}
	for _, h := range hosts {
		s["plugin "+h] = mustDocker(t, h, "plugin", "inspect", "fleet-agent:latest", "--format", "{{.ID}} {{.Enabled}}")
	}
	return s
}

func TestInitThreeHosts(t *testing.T) {
	initFleet(t)

	for _, h := range append([]string{manager}, workers...) {
		enabled := mustDocker(t, h, "plugin", "ls", "--format", "{{.Name}} {{.Enabled}}")
		assert.Check(t, is.Contains(enabled, "fleet-agent:latest true"), "engine %s", h)
	}
	nodes := swarmNodes(t)
	for _, h := range append([]string{manager}, workers...) {
		assert.Check(t, is.Equal(nodes[h], "Ready"), "swarm node %s", h)
	}
	netInfo := mustDocker(t, manager, "network", "inspect", "fleet", "--format",
		"{{.Driver}} {{.Attachable}} {{(index .IPAM.Config 0).Subnet}}")
	assert.Check(t, is.Equal(netInfo, "overlay true "+subnet))

	v := describeFleet(t)
	assert.Check(t, is.Equal(v.Manager, manager))
	assert.Check(t, is.Equal(v.Network.Subnet, subnet))
	assert.Assert(t, is.Len(v.Nodes, 3))
	for _, n := range v.Nodes {
		assert.Assert(t, n.Info != nil, "node %s: %s", n.Hostname, n.Error)
		assert.Check(t, n.Info.NCPU > 0, "node %s", n.Hostname)
		assert.Check(t, n.Info.MemTotal > 0, "node %s", n.Hostname)
		assert.Check(t, strings.HasPrefix(n.Info.CRIU.Version, "4."), "node %s CRIU %q", n.Hostname, n.Info.CRIU.Version)
		assert.Check(t, n.Info.Engine.Experimental, "node %s", n.Hostname)
		assert.Check(t, n.Info.Migration.Ready, "node %s: %v", n.Hostname, n.Info.Migration.Problems)
		assert.Assert(t, n.Metrics != nil, "node %s: %s", n.Hostname, n.Error)
		assert.Check(t, is.Len(n.Metrics.CPU.Cores, n.Info.NCPU), "node %s", n.Hostname)
		assert.Check(t, n.Metrics.Memory.Total > 0 && n.Metrics.Memory.Used > 0, "node %s", n.Hostname)
	}
}

func TestInitAgainChangesNothing(t *testing.T) {
	initFleet(t)
	hosts := append([]string{manager}, workers...)
	before := engineState(t, hosts...)
	r := initFleet(t)
	assert.Check(t, is.DeepEqual(engineState(t, hosts...), before))
	// Nothing to report on stderr: no join, no install, no network.
	assert.Check(t, is.Equal(strings.TrimSpace(r.Stderr), ""))
	assert.Check(t, is.Contains(r.Stdout, "fleet ready: 3 nodes"))
}

func TestInitRefusesUnknownWorkerContext(t *testing.T) {
	initFleet(t)
	before := engineState(t, manager)
	r := docker(t, manager, "fleet", "init", "--worker", "no-such-host")
	assert.Check(t, is.Equal(r.Code, 1), r.String())
	assert.Check(t, is.Contains(r.Stderr, "docker fleet init: --worker no-such-host"))
	assert.Check(t, is.Contains(r.Stderr, "does not exist"))
	assert.Check(t, is.DeepEqual(engineState(t, manager), before))
}

func TestInitRefusesWorkerWhoseEngineIsDown(t *testing.T) {
	initFleet(t)
	sim(t, "up", "4")
	sim(t, "stop-engine", "h4")
	t.Cleanup(func() { sim(t, "start-engine", "h4") })
	before := engineState(t, manager)

	r := docker(t, manager, "fleet", "init", "--worker", "h2", "--worker", "h4")
	assert.Check(t, is.Equal(r.Code, 1), r.String())
	assert.Check(t, is.Contains(r.Stderr, "--worker h4"))
	assert.Check(t, is.Contains(r.Stderr, "not reachable"))

	sim(t, "start-engine", "h4")
	assert.Check(t, is.DeepEqual(engineState(t, manager), before))
	assertUntouched(t, "h4")
}

func TestInitUndoesWorkerWhoseAgentCannotStart(t *testing.T) {
	initFleet(t)
	sim(t, "up", "4")
	// Something else holds the agent port on h4: the agent cannot listen,
	// so init must take h4 back out of the swarm and remove the plugin.
	listenIn(t, "h4", api.DefaultPort)
	before := engineState(t, manager)

	r := docker(t, manager, "fleet", "init", "--worker", "h4")
	assert.Check(t, is.Equal(r.Code, 1), r.String())
	assert.Check(t, is.Contains(r.Stderr, "--worker h4"))
	assert.Check(t, is.Contains(r.Stderr, "is TCP port 7477 already in use on that host?"))
	assert.Check(t, is.Contains(r.Stderr, "taken back out of the swarm"))

	assert.Check(t, is.DeepEqual(engineState(t, manager), before))
	_, known := swarmNodes(t)["h4"]
	assert.Check(t, !known, "the manager still lists h4")
	assertUntouched(t, "h4")
}

// assertUntouched checks that init left nothing on host h's engine.
func assertUntouched(t *testing.T, h string) {
	t.Helper()
	assert.Check(t, is.Equal(mustDocker(t, h, "info", "--format", "{{.Swarm.LocalNodeState}}"), "inactive"))
	assert.Check(t, is.Equal(mustDocker(t, h, "plugin", "ls", "-q"), ""))
}

func TestInitAddsFourthHost(t *testing.T) {
	initFleet(t)
	sim(t, "up", "4")
	hosts := append([]string{manager}, workers...)
	before := engineState(t, hosts...)

	r := docker(t, manager, "fleet", "init", "--worker", "h4")
	assert.Assert(t, r.Code == 0, r.String())
	assert.Check(t, is.Contains(r.Stderr, "h4 joined the swarm"))
	assert.Check(t, is.Contains(r.Stdout, "fleet ready: 4 nodes"))

	// The first three are as they were.
	after := engineState(t, hosts...)
	delete(before, "nodes")
	delete(after, "nodes")
	assert.Check(t, is.DeepEqual(after, before))

	assert.Check(t, is.Equal(swarmNodes(t)["h4"], "Ready"))
	assert.Check(t, is.Contains(mustDocker(t, "h4", "plugin", "ls", "--format", "{{.Name}} {{.Enabled}}"), "fleet-agent:latest true"))
	var names []string
	for _, n := range describeFleet(t).Nodes {
		assert.Check(t, n.Info != nil, "node %s: %s", n.Hostname, n.Error)
		names = append(names, n.Hostname)
	}
	sort.Strings(names)
	assert.Check(t, is.DeepEqual(names, []string{"h1", "h2", "h3", "h4"}))
}

func TestInitRestartsAHungAgent(t *testing.T) {
	initFleet(t)
	// A stopped (hung) agent process: enabled in the engine, silent on its port.
	var pids []string
	for _, pid := range strings.Fields(run(t, "ip", "netns", "pids", "h3").Stdout) {
		if comm, _ := os.ReadFile("/proc/" + pid + "/comm"); strings.TrimSpace(string(comm)) == "fleet-agent" {
			pids = append(pids, pid)
		}
	}
	assert.Assert(t, len(pids) > 0, "no agent process on h3")
	for _, pid := range pids {
		run(t, "kill", "-STOP", pid)
	}
	t.Cleanup(func() {
		for _, pid := range pids {
			run(t, "kill", "-CONT", pid)
		}
	})
	r := initFleet(t)
	assert.Check(t, is.Contains(r.Stderr, "h3: agent restarted"))
	assert.Check(t, is.Equal(mustDocker(t, manager, "fleet", "describe", "h3", "--format", "{{.Info.Node}}"), "h3"))
}

func TestInitRejectsBadFlags(t *testing.T) {
	initFleet(t)
	before := engineState(t, manager)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--subnet", "10.215.0.0/33"}, `--subnet "10.215.0.0/33"`},
		{[]string{"--subnet", "banana"}, `--subnet "banana"`},
		{[]string{"--subnet", "10.216.0.0/24"}, "--subnet 10.216.0.0/24: network \"fleet\" already exists with subnet " + subnet},
		{[]string{"--network", "bad name"}, `--network "bad name"`},
		{[]string{"--agent-port", "70000"}, "--agent-port 70000"},
		{[]string{"--worker", manager}, "--worker h1: that is the manager's own context"},
	} {
		r := docker(t, manager, append([]string{"fleet", "init"}, tc.args...)...)
		assert.Check(t, is.Equal(r.Code, 1), r.String())
		assert.Check(t, is.Contains(r.Stderr, "docker fleet init: "+tc.want), r.String())
	}
	assert.Check(t, is.DeepEqual(engineState(t, manager), before))
}

func TestAgentRequiresFleetCertificate(t *testing.T) {
	initFleet(t)
	ca := fleetCA(t)
	url := "https://" + hostAddr("h2") + ":7477" + api.PathInfo

	get := func(cfg *tls.Config) (*http.Response, error) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := c.Do(req)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}

	// With a fleet certificate the agent answers: the refusals below are
	// about the certificate, not a dead port.
	good, err := ca.Issue("e2e-client", pki.RoleOperator, pki.OperatorValidity)
	assert.NilError(t, err)
	cfg, err := good.ClientConfig("h2")
	assert.NilError(t, err)
	resp, err := get(cfg)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(resp.StatusCode, http.StatusOK))

	// No client certificate.
	bare := withoutCertificate(cfg)
	_, err = get(bare)
	assert.Check(t, err != nil, "a client without a certificate was served")

	// A certificate from another CA.
	fcfg := foreignClient(t, ca, "h2")
	_, err = get(fcfg)
	assert.Check(t, err != nil, "a client with another CA's certificate was served")

	// Plain HTTP.
	c := &http.Client{Timeout: 10 * time.Second}
	if resp, err := c.Get("http://" + hostAddr("h2") + ":7477" + api.PathInfo); err == nil {
		resp.Body.Close()
		assert.Check(t, resp.StatusCode != http.StatusOK, "plain HTTP was served")
	}
}

func TestDescribeNode(t *testing.T) {
	initFleet(t)
	var v nodeView
	assert.NilError(t, json.Unmarshal([]byte(mustDocker(t, manager, "fleet", "describe", "h2", "--format", "json")), &v))
	assert.Check(t, is.Equal(v.Hostname, "h2"))
	assert.Assert(t, v.Info != nil && v.Metrics != nil, v.Error)
	assert.Check(t, is.Equal(v.Info.Node, "h2"))
	assert.Check(t, is.Len(v.Metrics.CPU.Cores, v.Info.NCPU))
	var eth0 *api.Interface
	for i := range v.Metrics.Network {
		if v.Metrics.Network[i].Name == "eth0" {
			eth0 = &v.Metrics.Network[i]
		}
	}
	assert.Assert(t, eth0 != nil, "no eth0 in %v", v.Metrics.Network)
	assert.Check(t, eth0.RxBytes > 0 && eth0.TxBytes > 0)

	// A container started on h2 shows up in its list.
	mustDocker(t, "h2", "run", "-d", "--name", "e2e-describe", "fleet-workload:latest")
	t.Cleanup(func() { docker(t, "h2", "rm", "-f", "e2e-describe") })
	table := mustDocker(t, manager, "fleet", "describe", "h2")
	for _, want := range []string{"Node:", "CRIU:", "CORE", "HELD BY", "INTERFACE", "eth0", "e2e-describe"} {
		assert.Check(t, is.Contains(table, want))
	}
	assert.Check(t, is.Equal(mustDocker(t, manager, "fleet", "describe", "h2", "--format", "{{.Info.Node}}"), "h2"))

	r := docker(t, manager, "fleet", "describe", "h9")
	assert.Check(t, is.Equal(r.Code, 1))
	assert.Check(t, is.Contains(r.Stderr, `docker fleet describe: no node, service or container named "h9"`))
}
