//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// netsCompose is a project with two networks of its own, which both
// services join (nweb on h2, napi on h3), and, for napi, a secret from a
// file, one from the environment and a config.
const netsCompose = `
name: e2enets
services:
  nweb:
    image: fleet-workload:latest
    environment: {BALLAST_MB: "4"}
    networks:
      front: {aliases: [www]}
      back:
    deploy:
      placement: {constraints: [node.hostname==h2]}
  napi:
    image: fleet-workload:latest
    environment: {BALLAST_MB: "4"}
    networks: [front, back]
    secrets:
      - db_password
      - source: api_token
        target: token
        mode: 0400
    configs:
      - source: app
        target: /etc/app.conf
    deploy:
      placement: {constraints: [node.hostname==h3]}
networks:
  front:
    ipam: {config: [{subnet: 10.217.1.0/24}]}
  back:
    ipam: {config: [{subnet: 10.217.2.0/24}]}
secrets:
  db_password: {file: ./db_password.txt}
  api_token: {environment: E2E_NETS_API_TOKEN}
configs:
  app: {content: "mode=e2e-nets"}
`

const (
	netsPassword = "e2e-nets-hunter2"
	netsToken    = "e2e-nets-t0k3n"
	netsFront    = "e2enets_front"
	netsBack     = "e2enets_back"
)

// forgetNets removes what the test may leave: its services, then its
// networks (once their last endpoints are gone).
func forgetNets(t *testing.T) {
	fleetCmd(t, "rm", "nweb", "napi")
	for _, n := range []string{netsFront, netsBack} {
		for i := 0; i < 10 && docker(t, manager, "network", "rm", n).Code != 0; i++ {
			if docker(t, manager, "network", "inspect", n).Code != 0 {
				break
			}
			time.Sleep(time.Second)
		}
	}
}

// endpoints are a container's addresses by network, as its engine has them.
func endpoints(t *testing.T, host, name string) map[string]string {
	t.Helper()
	var nets map[string]struct{ IPAddress string }
	out := mustDocker(t, host, "inspect", name, "--format", "{{json .NetworkSettings.Networks}}")
	assert.NilError(t, json.Unmarshal([]byte(out), &nets), out)
	ips := map[string]string{}
	for n, ep := range nets {
		ips[n] = ep.IPAddress
	}
	return ips
}

// getOn asks the workload at url from a client container on host that is
// on network net alone: a name resolves there, not on the fleet network.
func getOn(t *testing.T, host, net, url string) workloadState {
	t.Helper()
	var st workloadState
	for attempt := 0; ; attempt++ {
		r := docker(t, host, "run", "--rm", "--network", net, workload, "get", url)
		if r.Code == 0 && json.Unmarshal([]byte(r.Stdout), &st) == nil {
			return st
		}
		assert.Assert(t, attempt < 10, "%s on %s from %s: %s", url, net, host, r)
		time.Sleep(time.Second)
	}
}

// checkFiles checks that the process of name on host has its secrets and
// config, with their modes, and that its engine's inspect of it holds
// none of their contents.
func checkFiles(t *testing.T, host, name string) {
	t.Helper()
	c, ok := containerOn(t, name)
	assert.Assert(t, ok && c.Host == host, "%s: %+v", name, c)
	assert.Check(t, is.Equal(readProc(t, c.State.Pid, "root/run/secrets/db_password"), netsPassword))
	assert.Check(t, is.Equal(readProc(t, c.State.Pid, "root/run/secrets/token"), netsToken))
	assert.Check(t, is.Equal(readProc(t, c.State.Pid, "root/etc/app.conf"), "mode=e2e-nets"))
	st, err := os.Stat(filepath.Join("/proc", strconv.Itoa(c.State.Pid), "root/run/secrets/token"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Mode().Perm(), os.FileMode(0o400)))
	inspect := mustDocker(t, host, "inspect", name)
	for _, secret := range []string{netsPassword, netsToken, "mode=e2e-nets"} {
		assert.Check(t, !strings.Contains(inspect, secret), "docker inspect %s on %s shows %q", name, host, secret)
	}
}

// filesDirs are the directories of name's secrets and configs on host.
func filesDirs(t *testing.T, host, name string) []string {
	t.Helper()
	root := mustDocker(t, host, "info", "--format", "{{.DockerRootDir}}")
	dirs, err := filepath.Glob(filepath.Join(root, "fleet", "secrets", name+"-*"))
	assert.NilError(t, err)
	return dirs
}

// TestComposeNetworksAndSecrets: a project's networks are made as
// attachable overlay networks with their subnets; its services reach each
// other there by name across hosts; a secret and a config are in the
// container, not in what docker inspect shows; a migration keeps the
// container's name, secrets, config and its addresses on every network,
// and leaves no copy of the secrets on the source; scale cannot make a
// replica where no agent has the contents, and says so.
func TestComposeNetworksAndSecrets(t *testing.T) {
	initFleet(t)
	forgetNets(t)
	t.Cleanup(func() { forgetNets(t) })
	t.Setenv("E2E_NETS_API_TOKEN", netsToken)
	dir := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "db_password.txt"), []byte(netsPassword), 0o600))
	file := filepath.Join(dir, "compose.yaml")
	assert.NilError(t, os.WriteFile(file, []byte(netsCompose), 0o644))
	out := mustFleet(t, "create", "-f", file)
	t.Logf("create:\n%s", out)

	for net, subnet := range map[string]string{netsFront: "10.217.1.0/24", netsBack: "10.217.2.0/24"} {
		got := mustDocker(t, manager, "network", "inspect", net, "--format", "{{.Driver}} {{.Attachable}} {{range .IPAM.Config}}{{.Subnet}}{{end}}")
		assert.Check(t, is.Equal(got, "overlay true "+subnet), net)
	}

	// By name, across hosts, on each network: nweb (h2) and napi (h3) from
	// clients on h1 and h3, napi from nweb's own host and from nweb itself.
	assert.Check(t, is.Equal(getOn(t, "h1", netsBack, "http://napi:8080/").Hostname, "napi.1"))
	assert.Check(t, is.Equal(getOn(t, "h1", netsFront, "http://www:8080/").Hostname, "nweb.1"))
	assert.Check(t, is.Equal(getOn(t, "h2", netsFront, "http://napi.1:8080/").Hostname, "napi.1"))
	assert.Check(t, is.Equal(getOn(t, "h3", netsBack, "http://nweb:8080/").Hostname, "nweb.1"))
	r := docker(t, "h2", "exec", "nweb.1", "/workload", "get", "http://napi:8080/")
	assert.Check(t, r.Code == 0 && strings.Contains(r.Stdout, `"hostname":"napi.1"`), "nweb.1 asks napi: %s", r)

	checkFiles(t, "h3", "napi.1")
	stored := mustDocker(t, manager, "config", "inspect", "docker-fleet-service.napi")
	assert.Check(t, !strings.Contains(stored, netsPassword) && !strings.Contains(stored, netsToken), "the stored definition holds a secret")
	assert.Check(t, is.Len(filesDirs(t, "h3", "napi.1"), 1))

	before := endpoints(t, "h3", "napi.1")
	assert.Check(t, before[netsFront] != "" && before[netsBack] != "" && before["fleet"] != "", "%v", before)
	st0 := ask(t, "h1", fleetIP(t, "napi.1"))

	out = mustFleet(t, "migrate", "napi.1", "--to", "h1")
	assert.Check(t, is.Contains(out, "migrated napi.1 from h3 to h1"))
	assert.Check(t, is.DeepEqual(endpoints(t, "h1", "napi.1"), before), "the same addresses on every network")
	checkFiles(t, "h1", "napi.1")
	st := ask(t, "h2", fleetIP(t, "napi.1"))
	assert.Check(t, st.Counter > st0.Counter && st.Birth == st0.Birth, "not the same process: %+v → %+v", st0, st)
	assert.Check(t, is.Equal(getOn(t, "h3", netsBack, "http://napi:8080/").Hostname, "napi.1"))
	assert.Check(t, is.Equal(getOn(t, "h2", netsFront, "http://"+before[netsFront]+":8080/").Hostname, "napi.1"))
	assert.Check(t, is.Len(filesDirs(t, "h3", "napi.1"), 0), "the source kept the secrets")
	assert.Check(t, is.Len(filesDirs(t, "h1", "napi.1"), 1))

	// napi is pinned to h3, which no longer has the contents.
	r = fleetCmd(t, "scale", "napi=2")
	assert.Check(t, r.Code != 0, "scale made a replica without its secrets: %s", r)
	assert.Check(t, is.Contains(r.Stderr, "docker fleet create -f"))
	assert.Check(t, is.Len(ofService(engineContainers(t), "napi"), 1))
}
