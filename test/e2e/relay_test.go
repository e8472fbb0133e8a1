//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/cli/cli/connhelper/commandconn"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/pki"
)

// blockAgentPort rejects the agent port from the test's own network
// namespace to every simulated host, as a firewall that lets a laptop reach
// only what its docker context uses; the hosts still reach one another.
func blockAgentPort(t *testing.T) {
	t.Helper()
	rule := []string{"OUTPUT", "-d", "10.213.0.0/24", "-p", "tcp", "--dport", fmt.Sprint(api.DefaultPort), "-j", "REJECT"}
	r := run(t, "iptables", append([]string{"-I"}, rule...)...)
	assert.Assert(t, r.Code == 0, r.String())
	t.Cleanup(func() { run(t, "iptables", append([]string{"-D"}, rule...)...) })
	c, err := net.DialTimeout("tcp", net.JoinHostPort(hostAddr("h2"), fmt.Sprint(api.DefaultPort)), 2*time.Second)
	if err == nil {
		c.Close()
	}
	assert.Assert(t, err != nil, "the agent port is still open to the test")
}

// transportFile is where the CLI remembers the transport of a context.
func transportFile(t *testing.T, ctxName string) string {
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, err := os.UserHomeDir()
		assert.NilError(t, err)
		dir = filepath.Join(home, ".docker")
	}
	return filepath.Join(dir, "fleet", "contexts", ctxName+".json")
}

func TestEveryCommandThroughTheManagersContext(t *testing.T) {
	blockAgentPort(t)
	initFleet(t)
	everyCommandThrough(t, manager)
}

func TestEveryCommandThroughSSHContext(t *testing.T) {
	initFleet(t)
	ctxName := sshContext(t, manager)
	blockAgentPort(t)
	assert.Check(t, is.Equal(mustDocker(t, ctxName, "info", "--format", "{{.Name}}"), manager))
	everyCommandThrough(t, ctxName)
	// init over ssh, where the context cannot say where the engine's socket
	// is, kept the manager's agent on the socket it had.
	mounts := mustDocker(t, manager, "plugin", "inspect", "fleet-agent:latest", "--format", "{{range .Settings.Mounts}}{{.Name}}={{.Source}} {{end}}")
	assert.Check(t, is.Contains(mounts, "sock=/run/fsim/h1/docker.sock"))
}

// TestInitWorkerThroughSSHFindsItsSocket: a worker added through an ssh
// context, whose engine listens on no default socket and which has no
// agent yet, gets an agent on the engine's own socket, found by probing
// its host; init again through its other context changes nothing.
func TestInitWorkerThroughSSHFindsItsSocket(t *testing.T) {
	initFleet(t)
	t.Cleanup(func() { initFleet(t) })
	removeServices(t, "viassh")
	t.Cleanup(func() { removeServices(t, "viassh") })
	r := fleetCmd(t, "leave", "h3")
	assert.Assert(t, r.Code == 0, r.String())
	for i := 0; mustDocker(t, "h3", "plugin", "ls", "-q") != ""; i++ {
		assert.Assert(t, i < 20, "h3's engine still has the agent")
		time.Sleep(500 * time.Millisecond)
	}

	ctxName := sshContext(t, "h3")
	r = docker(t, manager, "fleet", "init", "--subnet", subnet, "--worker", ctxName)
	assert.Assert(t, r.Code == 0, r.String())
	assert.Check(t, is.Contains(r.Stderr, `docker context "h3-ssh": its engine's API socket is /run/fsim/h3/docker.sock on its host (found by probing the host)`))
	assert.Check(t, is.Contains(r.Stdout, "fleet ready: 3 nodes (3 ready to migrate)"))
	mounts := func() string {
		return mustDocker(t, "h3", "plugin", "inspect", "fleet-agent:latest", "--format", "{{.Id}} {{range .Settings.Mounts}}{{.Name}}={{.Source}} {{end}}")
	}
	installed := mounts()
	assert.Check(t, is.Contains(installed, "sock=/run/fsim/h3/docker.sock"))
	assert.Check(t, is.Equal(mustDocker(t, "h3", "ps", "-aq", "--filter", "ancestor="+mustDocker(t, "h3", "images", "-q", api.RelayImage)), ""), "the probe was left on h3")

	// The worker works.
	mustFleet(t, "create", "--name", "viassh", "--image", workload, "--node", "h3", "--memory", "64m")
	assert.Check(t, is.Contains(mustFleet(t, "migrate", "viassh.1", "--to", "h2"), "migrated viassh.1 from h3 to h2"))

	// Init again, through the host's other context and through ssh:
	// nothing changes.
	for _, w := range []string{"h3", ctxName} {
		r = docker(t, manager, "fleet", "init", "--subnet", subnet, "--worker", w)
		assert.Assert(t, r.Code == 0, r.String())
		assert.Check(t, !strings.Contains(r.Stderr, "h3: agent"), "init through %s changed h3's agent: %s", w, r.Stderr)
		assert.Check(t, is.Equal(mounts(), installed), "through %s", w)
	}
}

// everyCommandThrough runs every fleet command through docker context
// ctxName, with the agent port closed to this machine: leave drains h3 out of
// the fleet and init adds it back, then describe, create, resize, scale,
// migrate and rm.
func everyCommandThrough(t *testing.T, ctxName string) {
	t.Helper()
	fleet := func(args ...string) result {
		return docker(t, ctxName, append([]string{"fleet"}, args...)...)
	}
	must := func(args ...string) string {
		t.Helper()
		r := fleet(args...)
		assert.Assert(t, r.Code == 0, "docker --context %s fleet %v\n%s", ctxName, args, r)
		return r.Stdout
	}
	t.Cleanup(func() { fleet("rm", "door", "pinned") })

	// From a fleet of two: leave drains h3, moving its replica live…
	must("create", "--name", "door", "--image", workload, "--node", "h3", "--memory", "64m", "-e", "BALLAST_MB=4")
	out := must("leave", "h3")
	assert.Check(t, is.Contains(out, "migrated door.1 from h3 to "))
	assert.Check(t, is.Contains(out, "h3 left the fleet"))
	_, listed := swarmNodes(t)["h3"]
	assert.Assert(t, !listed, "h3 is still in the swarm")

	// …and init adds it back, waiting for its agent through the relay.
	r := fleet("init", "--worker", "h3")
	assert.Assert(t, r.Code == 0, r.String())
	assert.Check(t, is.Contains(r.Stderr, "h3 joined the swarm"))
	assert.Check(t, is.Contains(r.Stdout, "fleet ready: 3 nodes (3 ready to migrate)"))
	assert.Check(t, !strings.Contains(r.Stdout, "unreachable"), r.Stdout)

	// describe reaches every node.
	var v fleetView
	assert.NilError(t, json.Unmarshal([]byte(must("describe", "--format", "json")), &v))
	assert.Assert(t, is.Len(v.Nodes, 3))
	for _, n := range v.Nodes {
		assert.Check(t, n.Error == "" && n.Info != nil && n.Metrics != nil, "node %s: %s", n.Hostname, n.Error)
	}

	// version: this docker-fleet and every node's agent, of one API.
	var ver struct {
		Client struct {
			API int `json:"api"`
		} `json:"client"`
		Nodes []struct {
			Node, AgentVersion, Error string
			API                       int
		} `json:"nodes"`
	}
	assert.NilError(t, json.Unmarshal([]byte(must("version", "--format", "json")), &ver))
	assert.Check(t, ver.Client.API >= 2)
	assert.Check(t, is.Len(ver.Nodes, 3))
	for _, n := range ver.Nodes {
		assert.Check(t, n.Error == "" && n.AgentVersion != "" && n.API == ver.Client.API, "node %+v", n)
	}
	assert.Check(t, !strings.Contains(must("version"), "upgrade"), "no skew in a fleet of one build")

	// create asks a ledger for an exclusive core; resize changes it in place.
	out = must("create", "--name", "pinned", "--image", workload, "--cpus", "1", "--memory", "64m")
	assert.Check(t, is.Contains(out, "pinned.1"))
	before := ofService(engineContainers(t), "pinned")
	assert.Assert(t, is.Len(before, 1))
	must("resize", "pinned.1", "--memory", "96m")
	after := ofService(engineContainers(t), "pinned")[0]
	assert.Check(t, is.Equal(after.HostConfig.Memory, int64(96<<20)))
	assert.Check(t, is.Equal(after.State.Pid, before[0].State.Pid))

	// scale and migrate.
	must("scale", "door=2")
	assert.Check(t, is.Len(ofService(engineContainers(t), "door"), 2))
	c, ok := containerOn(t, "door.1")
	assert.Assert(t, ok)
	to := "h2"
	if c.Host == to {
		to = "h3"
	}
	out = must("migrate", "door.1", "--to", to)
	assert.Check(t, is.Contains(out, "migrated door.1 from "+c.Host+" to "+to))
	c, ok = containerOn(t, "door.1")
	assert.Check(t, ok && c.Host == to && c.State.Running, "door.1 on %s", c.Host)

	// rm.
	must("rm", "door", "pinned")
	assert.Check(t, is.Len(ofService(engineContainers(t), "door"), 0))
	assert.Check(t, is.Len(ofService(engineContainers(t), "pinned"), 0))
}

// sshContext runs sshd in host h's network namespace and makes a docker
// context that reaches h's engine through it, as from a laptop:
// docker runs `ssh root@10.213.0.1N docker system dial-stdio`, and sshd
// gives that session the simulated engine's socket as DOCKER_HOST, which
// the context does not name.
func sshContext(t *testing.T, h string) string {
	t.Helper()
	const sshd = "/usr/sbin/sshd"
	_, err := os.Stat(sshd)
	assert.NilError(t, err, "openssh-server is missing (test/sim/install-deps.sh installs it)")
	dir := t.TempDir()
	for _, k := range []string{"host_key", "client_key"} {
		r := run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k))
		assert.Assert(t, r.Code == 0, r.String())
	}
	pub, err := os.ReadFile(filepath.Join(dir, "client_key.pub"))
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600))
	addr := hostAddr(h)
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(strings.Join([]string{
		"ListenAddress " + addr + ":22",
		"HostKey " + filepath.Join(dir, "host_key"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"PermitRootLogin prohibit-password",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"StrictModes no",
		"SetEnv DOCKER_HOST=unix:///run/fsim/" + h + "/docker.sock",
	}, "\n")+"\n"), 0o600))
	assert.NilError(t, os.MkdirAll("/run/sshd", 0o755)) // sshd's privilege separation directory

	cmd := exec.Command("nsenter", "--net=/run/netns/"+h, sshd, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	logf, err := os.Create(filepath.Join(dir, "sshd.log"))
	assert.NilError(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	assert.NilError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr+":22", time.Second)
		if err == nil {
			c.Close()
			break
		}
		if i == 50 {
			log, _ := os.ReadFile(filepath.Join(dir, "sshd.log"))
			t.Fatalf("sshd does not listen on %s:22: %v\n%s", addr, err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// docker's ssh helper runs the `ssh` on its PATH: give it our keys.
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "ssh_config"), []byte(strings.Join([]string{
		"Host " + addr,
		"  User root",
		"  IdentityFile " + filepath.Join(dir, "client_key"),
		"  IdentitiesOnly yes",
		"  StrictHostKeyChecking no",
		"  UserKnownHostsFile /dev/null",
		"  LogLevel ERROR",
	}, "\n")+"\n"), 0o600))
	bin := filepath.Join(dir, "bin")
	assert.NilError(t, os.MkdirAll(bin, 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(bin, "ssh"),
		[]byte("#!/bin/sh\nexec /usr/bin/ssh -F "+filepath.Join(dir, "ssh_config")+" \"$@\"\n"), 0o755))
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	name := h + "-ssh"
	run(t, "docker", "context", "rm", "-f", name)
	r := run(t, "docker", "context", "create", name, "--docker", "host=ssh://root@"+addr)
	assert.Assert(t, r.Code == 0, r.String())
	t.Cleanup(func() {
		run(t, "docker", "context", "rm", "-f", name)
		os.Remove(transportFile(t, name))
	})
	return name
}

// relayHandshake opens a stream through the manager's relay to h2's agent,
// the way the CLI does (an exec of `relay dial` through the engine's API;
// here by the docker CLI, as the plugin's dialer is internal to it), and
// asks for the agent's info over TLS with cfg.
func relayHandshake(t *testing.T, cfg *tls.Config) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr := net.JoinHostPort(hostAddr("h2"), fmt.Sprint(api.DefaultPort))
	conn, err := commandconn.New(ctx, "docker", "--context", manager, "exec", "-i", api.RelayContainer,
		api.RelayBinary, api.RelayArg, api.RelayDial, addr)
	assert.NilError(t, err)
	defer conn.Close()
	var ready [1]byte
	_, err = io.ReadFull(conn, ready[:])
	assert.NilError(t, err, "the relay did not connect to %s", addr)
	assert.Assert(t, is.Equal(ready[0], api.RelayReady))
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	// With TLS 1.3 the agent's refusal of a client certificate arrives with
	// the first read, not in the handshake.
	if _, err := io.WriteString(tc, "GET "+api.PathInfo+" HTTP/1.1\r\nHost: h2\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

func TestRelayRequiresFleetCertificate(t *testing.T) {
	initFleet(t)
	blockAgentPort(t)
	ca := fleetCA(t)

	// With a fleet certificate the agent answers through the relay: the
	// refusals below are about the certificate, not a dead path.
	good, err := ca.Issue("e2e-client", pki.RoleOperator, pki.OperatorValidity)
	assert.NilError(t, err)
	cfg, err := good.ClientConfig("h2")
	assert.NilError(t, err)
	assert.NilError(t, relayHandshake(t, cfg))

	bare := withoutCertificate(cfg)
	assert.Check(t, relayHandshake(t, bare) != nil, "a client without a certificate was served through the relay")

	fcfg := foreignClient(t, ca, "h2")
	assert.Check(t, relayHandshake(t, fcfg) != nil, "a client with another CA's certificate was served through the relay")

	// The relay is no general proxy: it dials the agent port and no other.
	r := docker(t, manager, "exec", api.RelayContainer, api.RelayBinary, api.RelayArg, api.RelayDial, hostAddr("h2")+":2377")
	assert.Check(t, is.Equal(r.Code, 1), r.String())
	assert.Check(t, is.Contains(r.Stderr, "not an agent port"))

	// And it holds no privilege.
	var c []struct {
		Config struct {
			User string
			Env  []string
		}
		HostConfig struct {
			NetworkMode    string
			CapDrop        []string
			ReadonlyRootfs bool
			SecurityOpt    []string
			Privileged     bool
			Memory         int64
			Binds          []string
		}
		Mounts []any
	}
	assert.NilError(t, json.Unmarshal([]byte(mustDocker(t, manager, "inspect", api.RelayContainer)), &c))
	assert.Assert(t, is.Len(c, 1))
	h := c[0].HostConfig
	assert.Check(t, is.Equal(c[0].Config.User, "65534:65534"))
	assert.Check(t, is.Contains(c[0].Config.Env, api.EnvRelayPorts+"=7477"))
	assert.Check(t, is.Equal(h.NetworkMode, "host"))
	assert.Check(t, is.DeepEqual(h.CapDrop, []string{"ALL"}))
	assert.Check(t, h.ReadonlyRootfs && !h.Privileged && h.Memory > 0)
	assert.Check(t, is.Contains(h.SecurityOpt, "no-new-privileges"))
	assert.Check(t, is.Len(c[0].Mounts, 0))
	assert.Check(t, is.Len(h.Binds, 0))
}

func TestRelayErrorsNameTheHop(t *testing.T) {
	initFleet(t)

	// The manager's engine: a context whose engine does not answer.
	nowhere := "fleet-e2e-nowhere"
	run(t, "docker", "context", "rm", "-f", nowhere)
	assert.Assert(t, run(t, "docker", "context", "create", nowhere, "--docker", "host=unix:///run/fsim/nowhere.sock").Code == 0)
	t.Cleanup(func() { run(t, "docker", "context", "rm", "-f", nowhere) })
	r := docker(t, nowhere, "fleet", "describe")
	assert.Check(t, is.Equal(r.Code, 1), r.String())
	assert.Check(t, is.Contains(r.Stderr, `the manager's engine (docker context "`+nowhere+`") is not reachable`))

	// The relay: stopped, it is named with the remedy; init starts it again.
	mustDocker(t, manager, "stop", api.RelayContainer)
	t.Cleanup(func() { docker(t, manager, "start", api.RelayContainer) })
	r = fleetCmd(t, "describe")
	assert.Check(t, is.Equal(r.Code, 1), r.String())
	assert.Check(t, is.Contains(r.Stderr, "the fleet's relay (container fleet-relay on the manager"))
	assert.Check(t, is.Contains(r.Stderr, "is not running"))
	assert.Check(t, is.Contains(r.Stderr, "run `docker fleet init`"))
	assert.Check(t, is.Contains(initFleet(t).Stderr, "fleet relay started"))
	assert.Check(t, is.Equal(mustDocker(t, manager, "inspect", "--format", "{{.State.Running}}", api.RelayContainer), "true"))

	// The agent behind the relay: the node and its address are named.
	mustDocker(t, "h3", "plugin", "disable", "-f", "fleet-agent:latest")
	t.Cleanup(func() { waitAgent(t, "h3") })
	for _, n := range describeFleet(t).Nodes {
		if n.Hostname != "h3" {
			assert.Check(t, n.Error == "", "node %s: %s", n.Hostname, n.Error)
			continue
		}
		assert.Check(t, n.Info == nil)
		assert.Check(t, is.Contains(n.Error, "agent of h3 at "+hostAddr("h3")+":7477"))
		assert.Check(t, is.Contains(n.Error, "the fleet's relay on the manager"))
		assert.Check(t, is.Contains(n.Error, "connection refused"))
	}
	mustDocker(t, "h3", "plugin", "enable", "fleet-agent:latest")
}

func TestDirectIsRememberedPerContext(t *testing.T) {
	initFleet(t)
	file := transportFile(t, manager)
	t.Cleanup(func() {
		if fleetCmd(t, "--direct=false", "describe", "h1", "--format", "{{.Info.Node}}").Code != 0 {
			os.Remove(file)
		}
	})

	r := fleetCmd(t, "--direct", "describe", "h2", "--format", "{{.Info.Node}}")
	assert.Assert(t, r.Code == 0, r.String())
	assert.Check(t, is.Equal(strings.TrimSpace(r.Stdout), "h2"))
	assert.Check(t, is.Contains(r.Stderr, "from now on"))
	b, err := os.ReadFile(file)
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(b), `"direct"`))

	// Remembered: with the agent port closed, the next command, without the
	// flag, still dials the agents directly, and cannot reach them.
	blockAgentPort(t)
	for _, n := range describeFleet(t).Nodes {
		assert.Check(t, n.Info == nil && strings.Contains(n.Error, "connection refused"), "node %s reached: %s", n.Hostname, n.Error)
	}

	// --direct=false goes back to the relay, and that is remembered too.
	r = fleetCmd(t, "--direct=false", "describe", "--format", "json")
	assert.Assert(t, r.Code == 0, r.String())
	for _, n := range describeFleet(t).Nodes {
		assert.Check(t, n.Info != nil, "node %s: %s", n.Hostname, n.Error)
	}
	b, err = os.ReadFile(file)
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(b), `"relay"`))
}
