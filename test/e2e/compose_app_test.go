//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

const (
	appSecret = "e2e-app-s3cret"
	appPort   = 18090
)

// appCompose is a two-service app built on the manager alone (FROM
// scratch, the workload binary copied in): api, healthy before web starts,
// with a secret and a restart policy; web on every node with a published
// port, on both of the app's networks.
const appCompose = `name: e2eapp
services:
  api:
    build: .
    restart: unless-stopped
    environment: {BALLAST_MB: "4"}
    secrets: [db_password]
    networks: [back]
    healthcheck:
      test: ["CMD", "/workload", "get", "http://127.0.0.1:8080/"]
      interval: 1s
      retries: 3
  web:
    build: .
    restart: always
    environment: {BALLAST_MB: "4"}
    ports: ["%d:8080"]
    networks: [front, back]
    depends_on:
      api: {condition: service_healthy}
    deploy: {replicas: %d}
networks:
  front: {}
  back: {}
secrets:
  db_password: {file: ./db_password.txt}
`

// TestComposeAppAcrossNodes: an ordinary Compose app, built on the manager
// only, runs across the nodes with no registry: one web replica per node,
// each answering on its node's port and reaching api by name across hosts;
// the secret in /run/secrets and nowhere in docker inspect; one replica
// more is refused naming the port; api migrates keeping its secret and its
// name.
func TestComposeAppAcrossNodes(t *testing.T) {
	initFleet(t)
	hosts := fleetHostsBut("")
	bin := os.Getenv("SIM_WORKLOAD")
	assert.Assert(t, bin != "", "SIM_WORKLOAD names the workload binary (make e2e sets it)")
	forget := func() {
		fleetCmd(t, "down", "-p", "e2eapp")
		for _, n := range []string{"e2eapp_front", "e2eapp_back"} {
			docker(t, manager, "network", "rm", n)
		}
		for _, h := range hosts {
			docker(t, h, "rmi", "-f", "e2eapp-api:latest", "e2eapp-web:latest")
		}
	}
	forget()
	t.Cleanup(forget)

	dir := filepath.Join(t.TempDir(), "e2eapp")
	assert.NilError(t, os.MkdirAll(dir, 0o755))
	b, err := os.ReadFile(bin)
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "workload"), b, 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY workload /workload\nENV GODEBUG=multipathtcp=0\nENTRYPOINT [\"/workload\"]\n"), 0o644))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "db_password.txt"), []byte(appSecret), 0o600))
	file := filepath.Join(dir, "compose.yaml")
	assert.NilError(t, os.WriteFile(file, []byte(fmt.Sprintf(appCompose, appPort, len(hosts))), 0o644))
	for _, h := range hosts[1:] {
		assert.Check(t, docker(t, h, "image", "inspect", "e2eapp-web:latest").Code != 0, "%s has the app's image before the create", h)
	}

	r := fleetCmd(t, "create", "-f", file)
	assert.Assert(t, r.Code == 0, r.String())
	t.Logf("create:\n%s%s", r.Stdout, r.Stderr)

	// One web replica per node, each answering on its node's port and
	// reaching api by name across hosts.
	webs := ofService(engineContainers(t), "web")
	on := map[string]bool{}
	for _, c := range webs {
		on[c.Host] = true
	}
	assert.Check(t, is.Len(webs, len(hosts)))
	assert.Check(t, is.Len(on, len(hosts)), "web replicas on %v", on)
	api, ok := containerOn(t, "api.1")
	assert.Assert(t, ok, "api.1 runs nowhere")
	for _, c := range webs {
		assert.Check(t, answersOn(t, hostAddr(c.Host), appPort), "%s does not answer on %s:%d", c.Name, c.Host, appPort)
		if c.Host == api.Host {
			continue
		}
		out := docker(t, c.Host, "exec", c.Name, "/workload", "get", "http://api:8080/")
		assert.Check(t, out.Code == 0 && strings.Contains(out.Stdout, `"hostname":"api.1"`), "%s on %s reaching api on %s: %s", c.Name, c.Host, api.Host, out)
	}

	// The secret: in /run/secrets, nowhere in docker inspect.
	assert.Check(t, is.Equal(readProc(t, api.State.Pid, "root/run/secrets/db_password"), appSecret))
	assert.Check(t, !strings.Contains(mustDocker(t, api.Host, "inspect", "api.1"), appSecret), "docker inspect shows the secret")

	// One replica more has no node whose port is free: refused by name,
	// nothing changed.
	r = fleetCmd(t, "scale", fmt.Sprintf("web=%d", len(hosts)+1))
	assert.Check(t, r.Code != 0, r.String())
	assert.Check(t, is.Contains(r.Stderr, fmt.Sprintf("host port %d/tcp taken by web.", appPort)))
	assert.Check(t, is.Len(ofService(engineContainers(t), "web"), len(hosts)))

	// api migrates with its secret and its name.
	to := hosts[0]
	if to == api.Host {
		to = hosts[1]
	}
	assert.Check(t, is.Contains(mustFleet(t, "migrate", "api.1", "--to", to), "migrated api.1 from "+api.Host+" to "+to))
	moved, ok := containerOn(t, "api.1")
	assert.Assert(t, ok && moved.Host == to, "api.1: %+v", moved)
	assert.Check(t, is.Equal(readProc(t, moved.State.Pid, "root/run/secrets/db_password"), appSecret))
	for _, c := range webs {
		if c.Host == to {
			continue
		}
		out := docker(t, c.Host, "exec", c.Name, "/workload", "get", "http://api:8080/")
		assert.Check(t, out.Code == 0 && strings.Contains(out.Stdout, `"hostname":"api.1"`), "%s reaching api after its migration: %s", c.Name, out)
	}
}

// answersOn says whether the workload answers on addr:port, from this
// machine, within a few seconds.
func answersOn(t *testing.T, addr string, port int) bool {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	for i := 0; i < 10; i++ {
		resp, err := c.Get(fmt.Sprintf("http://%s:%d/", addr, port))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	return false
}
