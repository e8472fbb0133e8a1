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

// optionsCompose is a service with the plain container options of Compose:
// its birth file on a tmpfs of a read-only root, so that the tmpfs's
// content is what the migration must carry.
const optionsCompose = `
services:
  opts:
    image: fleet-workload:latest
    environment:
      BALLAST_MB: "8"
      BIRTH_FILE: /scratch/birth
    read_only: true
    tmpfs:
      - /scratch:size=16m
    cap_add: [NET_ADMIN]
    cap_drop: [MKNOD]
    sysctls:
      net.core.somaxconn: "1111"
    ulimits:
      nofile: {soft: 1234, hard: 2345}
    shm_size: 32m
    restart: unless-stopped
    stop_signal: SIGINT
    healthcheck:
      test: ["CMD", "/workload", "get", "http://127.0.0.1:8080/"]
      interval: 1s
      timeout: 3s
      retries: 3
    deploy:
      placement:
        constraints: [node.hostname==h2]
`

// engineOptions is what an engine says of a container's options.
type engineOptions struct {
	Config struct {
		StopSignal  string
		Healthcheck *struct{ Test []string }
	}
	HostConfig struct {
		CapAdd, CapDrop []string
		Sysctls         map[string]string
		Tmpfs           map[string]string
		ShmSize         int64
		ReadonlyRootfs  bool
		Ulimits         []struct {
			Name       string
			Soft, Hard int64
		}
		RestartPolicy struct{ Name string }
	}
	State struct {
		Pid    int
		Health *struct{ Status string }
	}
}

func inspectOptions(t *testing.T, host, name string) engineOptions {
	t.Helper()
	var v []engineOptions
	assert.NilError(t, json.Unmarshal([]byte(mustDocker(t, host, "inspect", name)), &v))
	assert.Assert(t, is.Len(v, 1))
	return v[0]
}

// checkOptions checks that the engine on host gave name every option of
// optionsCompose, and that its process has them.
func checkOptions(t *testing.T, host, name string) engineOptions {
	t.Helper()
	o := inspectOptions(t, host, name)
	h := o.HostConfig
	// Engines before 23 write capabilities with the CAP_ prefix.
	noPrefix := func(caps []string) []string {
		out := make([]string, len(caps))
		for i, c := range caps {
			out[i] = strings.TrimPrefix(c, "CAP_")
		}
		return out
	}
	assert.Check(t, is.DeepEqual(noPrefix(h.CapAdd), []string{"NET_ADMIN"}), host)
	assert.Check(t, is.DeepEqual(noPrefix(h.CapDrop), []string{"MKNOD"}), host)
	assert.Check(t, is.Equal(h.Sysctls["net.core.somaxconn"], "1111"), host)
	assert.Check(t, is.Equal(h.Tmpfs["/scratch"], "size=16m"), host)
	assert.Check(t, is.Equal(h.ShmSize, int64(32<<20)), host)
	assert.Check(t, h.ReadonlyRootfs, host)
	assert.Check(t, len(h.Ulimits) == 1 && h.Ulimits[0].Name == "nofile" && h.Ulimits[0].Soft == 1234 && h.Ulimits[0].Hard == 2345, "%s: %+v", host, h.Ulimits)
	assert.Check(t, is.Equal(h.RestartPolicy.Name, "unless-stopped"), host)
	assert.Check(t, is.Equal(o.Config.StopSignal, "SIGINT"), host)
	assert.Check(t, o.Config.Healthcheck != nil && len(o.Config.Healthcheck.Test) == 4, host)

	// The process: its capabilities, limits, sysctl and tmpfs.
	pid := o.State.Pid
	assert.Assert(t, pid > 0, "%s on %s does not run", name, host)
	status := readProc(t, pid, "status")
	const netAdmin, mknod = 12, 27
	capEff := procField(status, "CapEff:")
	caps, err := strconv.ParseUint(capEff, 16, 64)
	assert.NilError(t, err, status)
	assert.Check(t, caps&(1<<netAdmin) != 0 && caps&(1<<mknod) == 0, "%s: CapEff %s", host, capEff)
	// The hard limit: Go raises its own soft limit of open files.
	assert.Check(t, is.Regexp(`Max open files\s+\d+\s+2345\s+files`, readProc(t, pid, "limits")), host)
	// A net sysctl reads as the reader's network namespace has it.
	r := run(t, "nsenter", "-t", strconv.Itoa(pid), "-n", "cat", "/proc/sys/net/core/somaxconn")
	assert.Check(t, is.Equal(strings.TrimSpace(r.Stdout), "1111"), "%s: %s", host, r)
	assert.Check(t, is.Regexp(`(?m)^tmpfs /scratch tmpfs \S*size=16384k`, readProc(t, pid, "mounts")), host)
	return o
}

func readProc(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), name))
	assert.NilError(t, err)
	return string(b)
}

func procField(text, key string) string {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, key); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// waitHealthy waits until the engine on host calls name healthy.
func waitHealthy(t *testing.T, host, name string) {
	t.Helper()
	var last string
	for i := 0; i < 60; i++ {
		if o := inspectOptions(t, host, name); o.State.Health != nil {
			if last = o.State.Health.Status; last == "healthy" {
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s on %s is not healthy: %q", name, host, last)
}

// TestMigrateKeepsContainerOptions: a container given capabilities,
// sysctls, ulimits, a tmpfs on a read-only root, shm size, a healthcheck
// and a restart policy migrates and keeps every one of them, in the
// engine's definition (so that a restart there keeps them too) and in its
// process; the tmpfs keeps its content; the source engine never starts its
// copy again.
func TestMigrateKeepsContainerOptions(t *testing.T) {
	initFleet(t)
	removeServices(t, "opts")
	t.Cleanup(func() { removeServices(t, "opts") })
	file := filepath.Join(t.TempDir(), "compose.yaml")
	assert.NilError(t, os.WriteFile(file, []byte(optionsCompose), 0o644))
	mustFleet(t, "create", "-f", file)
	waitHealthy(t, "h2", "opts.1")
	before := checkOptions(t, "h2", "opts.1")
	birth := readProc(t, before.State.Pid, "root/scratch/birth")
	assert.Assert(t, birth != "")
	assert.Check(t, is.Contains(mustFleet(t, "describe", "opts.1"), "Health:"))
	st0 := ask(t, "h1", fleetIP(t, "opts.1"))

	out := mustFleet(t, "migrate", "opts.1", "--to", "h3")
	assert.Check(t, is.Contains(out, "migrated opts.1 from h2 to h3"))
	after := checkOptions(t, "h3", "opts.1")
	assert.Check(t, is.Equal(readProc(t, after.State.Pid, "root/scratch/birth"), birth), "the tmpfs lost its content")
	st := ask(t, "h1", fleetIP(t, "opts.1"))
	assert.Check(t, st.Counter > st0.Counter && st.Birth == st0.Birth, "not the same process: %+v → %+v", st0, st)
	waitHealthy(t, "h3", "opts.1")

	// The source engine never started its copy again (restart policy).
	time.Sleep(3 * time.Second)
	c, ok := containerOn(t, "opts.1")
	assert.Check(t, ok && c.Host == "h3", "opts.1: %+v", c)

	// A restart on the destination keeps the options: they are the
	// engine's, not only the restored process's.
	mustDocker(t, "h3", "restart", "opts.1")
	checkOptions(t, "h3", "opts.1")
	describe := mustFleet(t, "describe", "opts.1")
	assert.Check(t, is.Contains(describe, "Restart:"), describe)
	t.Logf("after the migration and a restart on h3:\n%s", describe)
}
