//go:build e2e

package e2e

// Day two: a fleet of a previous release upgraded by this one while a
// container migrates back and forth, version skew both ways, and an
// upgrade whose agent cannot start. The other releases are this tree built
// as they would be (test/e2e's buildRelease): stamped with an older API
// (shared/api's apiStamp), or with an agent that exits at start
// (daemonplugin's startFault).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/pki"
)

// buildRelease builds docker-fleet (with its agent inside) from a copy of
// this tree, as another release: stamped with version and extra linker
// flags. It returns the binary, which runs as `BIN fleet …` on its own.
func buildRelease(t *testing.T, version string, ldflags ...string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	r := run(t, "git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	assert.Assert(t, r.Code == 0, r.String())
	dir := t.TempDir()
	for _, f := range strings.Split(strings.TrimRight(r.Stdout, "\x00"), "\x00") {
		copyFile(t, filepath.Join(root, f), filepath.Join(dir, f))
	}
	t0 := time.Now()
	r = run(t, "make", "-C", dir, "bin/docker-fleet", "VERSION="+version, "EXTRA_LDFLAGS="+strings.Join(ldflags, " "))
	assert.Assert(t, r.Code == 0, "building release %s\n%s", version, r)
	t.Logf("built release %s in %.0fs", version, time.Since(t0).Seconds())
	return filepath.Join(dir, "bin", "docker-fleet")
}

// copyFile copies a file of the tree, keeping its mode; a file deleted in
// the work tree is left out, as a symlink is kept one.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	fi, err := os.Lstat(from)
	if os.IsNotExist(err) {
		return
	}
	assert.NilError(t, err)
	assert.NilError(t, os.MkdirAll(filepath.Dir(to), 0o755))
	if fi.Mode()&os.ModeSymlink != 0 {
		target, err := os.Readlink(from)
		assert.NilError(t, err)
		assert.NilError(t, os.Symlink(target, to))
		return
	}
	b, err := os.ReadFile(from)
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(to, b, fi.Mode().Perm()))
}

// releaseFleet runs `docker fleet ARGS` of release bin against the manager.
func releaseFleet(t *testing.T, bin string, args ...string) result {
	t.Helper()
	return run(t, "env", append([]string{"DOCKER_CONTEXT=" + manager, bin, "fleet"}, args...)...)
}

// versionReport is what `docker fleet version --format json` prints.
type versionReport struct {
	Client struct {
		Version string `json:"version"`
		API     int    `json:"api"`
	} `json:"client"`
	Nodes []struct {
		Node         string `json:"node"`
		AgentVersion string `json:"agentVersion"`
		API          int    `json:"api"`
		Error        string `json:"error"`
	} `json:"nodes"`
}

func versionsOf(t *testing.T, out string) versionReport {
	t.Helper()
	var v versionReport
	assert.NilError(t, json.Unmarshal([]byte(out), &v), out)
	assert.Assert(t, is.Len(v.Nodes, 3), out)
	return v
}

// assertAgents checks that every node's agent answers and is of version
// and API api.
func assertAgents(t *testing.T, v versionReport, version string, apiVersion int) {
	t.Helper()
	for _, n := range v.Nodes {
		assert.Check(t, n.Error == "" && n.AgentVersion == version && n.API == apiVersion,
			"%s: agent %q API %d (%s), want %q API %d", n.Node, n.AgentVersion, n.API, n.Error, version, apiVersion)
	}
}

// agentBuilds is each host's agent plugin: its build and whether it is
// enabled, and any other fleet plugin left there (a trial).
func agentBuilds(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, h := range fleetHostsBut("") {
		out[h] = mustDocker(t, h, "plugin", "ls", "--format", "{{.Name}} {{.Enabled}}")
		env := mustDocker(t, h, "plugin", "inspect", "fleet-agent:latest", "--format", "{{range .Settings.Env}}{{.}} {{end}}")
		for _, kv := range strings.Fields(env) {
			if strings.HasPrefix(kv, "FLEET_BUILD=") {
				out[h] += " " + kv
			}
		}
	}
	return out
}

// agentGaps asks every host's agent for its info every 100 ms, as an
// operator with the fleet's certificate, until the returned function is
// called; that returns each host's longest time without an answer.
func agentGaps(t *testing.T, hosts []string) func() map[string]time.Duration {
	t.Helper()
	cert, err := fleetCA(t).Issue("e2e-upgrade", pki.RoleOperator, pki.OperatorValidity)
	assert.NilError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	gaps := map[string]time.Duration{}
	var wg sync.WaitGroup
	for _, h := range hosts {
		cfg, err := cert.ClientConfig(h)
		assert.NilError(t, err)
		wg.Go(func() {
			c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
			url := "https://" + hostAddr(h) + fmt.Sprintf(":%d", api.DefaultPort) + api.PathInfo
			last := time.Now()
			for ctx.Err() == nil {
				if answered(ctx, c, url) {
					last = time.Now()
				} else {
					mu.Lock()
					gaps[h] = max(gaps[h], time.Since(last))
					mu.Unlock()
				}
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	}
	return func() map[string]time.Duration {
		cancel()
		wg.Wait()
		return gaps
	}
}

func answered(ctx context.Context, c *http.Client, url string) bool {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// runsOnce waits until name runs in exactly one place (a migration whose
// CLI lost its stream ends on its own, from its agents' journals) and
// returns it.
func runsOnce(t *testing.T, name string) (engineContainer, bool) {
	t.Helper()
	for i := 0; i < 120; i++ {
		var copies, running []engineContainer
		for _, c := range engineContainers(t) {
			if c.Name == name {
				copies = append(copies, c)
				if c.State.Running {
					running = append(running, c)
				}
			}
		}
		if len(copies) == 1 && len(running) == 1 {
			return running[0], true
		}
		time.Sleep(500 * time.Millisecond)
	}
	return engineContainer{}, false
}

// migrateWhile migrates name from host to host (h1 → h2 → h3 → h1 …) with
// this docker-fleet until done is closed and one more migration after,
// checking after each attempt that the container runs in exactly one
// place. It returns the successes and the refusals (each with the
// container left where it was).
func migrateWhile(t *testing.T, name string, done <-chan struct{}) (moved int, refused []string) {
	t.Helper()
	after := 0
	for {
		select {
		case <-done:
			after++
		default:
		}
		if after > 1 {
			return moved, refused
		}
		c, ok := runsOnce(t, name)
		assert.Assert(t, ok, "%s does not run in exactly one place", name)
		to := map[string]string{"h1": "h2", "h2": "h3", "h3": "h1"}[c.Host]
		r := fleetCmd(t, "migrate", name, "--to", to)
		now, ok := runsOnce(t, name)
		assert.Assert(t, ok, "%s does not run in exactly one place after its migration to %s: %s", name, to, r)
		if r.Code == 0 {
			assert.Check(t, is.Equal(now.Host, to), "migrate said it moved %s to %s: %s", name, to, r)
			moved++
			continue
		}
		refused = append(refused, fmt.Sprintf("to %s (stayed on %s): %s", to, now.Host, strings.TrimSpace(r.Stderr)))
	}
}

func TestUpgradeFromPreviousRelease(t *testing.T) {
	initFleet(t)
	current := versionsOf(t, mustFleet(t, "version", "--format", "json"))
	assertAgents(t, current, current.Client.Version, api.APIVersion)

	// The previous release: this tree speaking API 1, which has no
	// --checkpoint-every.
	previous := buildRelease(t, "e2e-previous", "-X github.com/docker-fleet/fleet/shared/api.apiStamp=1")
	initArgs := []string{"init", "--subnet", subnet, "--worker", "h2", "--worker", "h3"}

	// A previous docker-fleet does not put its older agents in place of
	// newer ones unless told to.
	r := releaseFleet(t, previous, initArgs...)
	assert.Assert(t, r.Code != 0, "a previous docker-fleet downgraded the fleet\n%s", r)
	assert.Check(t, is.Contains(r.Stderr, "newer than this docker-fleet (e2e-previous, API 1)"))
	assert.Check(t, is.Contains(r.Stderr, "--allow-downgrade"))
	assertAgents(t, versionsOf(t, mustFleet(t, "version", "--format", "json")), current.Client.Version, api.APIVersion)

	// The fleet as the previous release left it.
	r = releaseFleet(t, previous, append(initArgs, "--allow-downgrade")...)
	assert.Assert(t, r.Code == 0, r.String())
	t.Cleanup(func() { initFleet(t) }) // this release's agents again, whatever happens

	// This docker-fleet against the previous agents: describe works, a
	// newer feature is refused by name, version says what to upgrade.
	v := versionsOf(t, mustFleet(t, "version", "--format", "json"))
	assertAgents(t, v, "e2e-previous", 1)
	assert.Check(t, is.Contains(mustFleet(t, "version"), fmt.Sprintf("speaks API 1, this docker-fleet speaks %d: upgrade it with docker fleet init", api.APIVersion)))
	var fv fleetView
	assert.NilError(t, json.Unmarshal([]byte(mustFleet(t, "describe", "--format", "json")), &fv))
	assert.Check(t, is.Len(fv.Nodes, 3))
	r = fleetCmd(t, "create", "--name", "skew", "--image", workload, "--checkpoint-every", "30s")
	assert.Check(t, r.Code != 0, "an agent of API 1 was given --checkpoint-every: %s", r)
	assert.Check(t, is.Contains(r.Stderr, "--checkpoint-every needs agents of API 2 or newer"))
	assert.Check(t, is.Len(ofService(engineContainers(t), "skew"), 0))

	// The upgrade, while a container migrates from node to node.
	removeServices(t, "upg")
	t.Cleanup(func() { removeServices(t, "upg") })
	mustFleet(t, "create", "--name", "upg", "--image", workload, "--node", "h1", "--memory", "64m", "-e", "BALLAST_MB=8")
	ip := fleetIP(t, "upg.1")
	st0 := ask(t, "h1", ip)
	gaps := agentGaps(t, fleetHostsBut(""))
	upgraded := make(chan struct{})
	var up result
	go func() {
		defer close(upgraded)
		args := []string{"fleet", "init", "--subnet", subnet, "--worker", "h2", "--worker", "h3"}
		up = docker(t, manager, args...)
	}()
	moved, refused := migrateWhile(t, "upg.1", upgraded)
	longest := gaps()
	assert.Assert(t, up.Code == 0, "the upgrade failed\n%s", up)
	t.Logf("upgrade:\n%s%s", up.Stdout, up.Stderr)
	t.Logf("during it: %d migrations, %d refused (the container stayed): %q", moved, len(refused), refused)
	worst := time.Duration(0)
	for h, g := range longest {
		t.Logf("%s: longest time without an agent: %.1fs", h, g.Seconds())
		worst = max(worst, g)
	}
	t.Logf("longest time any node had no agent: %.1fs", worst.Seconds())
	assert.Check(t, worst < time.Minute, "a node had no agent for %s", worst)
	assert.Check(t, moved >= 2, "%d migrations during the upgrade", moved)
	for _, why := range refused {
		// Only a migration that met a drain between its announcement and
		// its prepare is refused (its container stays): the CLI waits for
		// the rest.
		assert.Check(t, strings.Contains(why, "making way for its upgrade"), "refused for another reason than the upgrade: %s", why)
	}
	assert.Check(t, is.Contains(up.Stderr, "no agent for"), "init says how long each node had no agent")
	assertAgents(t, versionsOf(t, mustFleet(t, "version", "--format", "json")), current.Client.Version, api.APIVersion)
	st := ask(t, "h1", ip)
	assert.Check(t, st.Counter > st0.Counter, "counter %d → %d", st0.Counter, st.Counter)
	assert.Check(t, is.Equal(st.Birth, st0.Birth), "the workload was restarted, not migrated")
	assert.Check(t, st.BallastOK != nil && *st.BallastOK)

	// The previous docker-fleet against the new agents: describe works, a
	// feature newer than it is refused by name, and it leaves them be.
	r = releaseFleet(t, previous, "describe", "--format", "json")
	assert.Check(t, r.Code == 0, r.String())
	assert.Check(t, json.Unmarshal([]byte(r.Stdout), &fv) == nil && len(fv.Nodes) == 3, r.Stdout)
	r = releaseFleet(t, previous, "create", "--name", "skew", "--image", workload, "--checkpoint-every", "30s")
	assert.Check(t, r.Code != 0, r.String())
	assert.Check(t, is.Contains(r.Stderr, "--checkpoint-every needs docker-fleet of API 2 or newer"))
	assert.Check(t, is.Contains(releaseFleet(t, previous, "version").Stdout, "newer than this docker-fleet (1)"))
	assert.Check(t, is.Len(ofService(engineContainers(t), "skew"), 0))
}

// TestUpgradeWhoseAgentCannotStart: every node keeps the agent it had,
// working, and init says which node and why.
func TestUpgradeWhoseAgentCannotStart(t *testing.T) {
	initFleet(t)
	before := agentBuilds(t)
	broken := buildRelease(t, "e2e-broken", "-X main.startFault=injected-by-the-e2e")
	r := releaseFleet(t, broken, "init", "--subnet", subnet, "--worker", "h2", "--worker", "h3")
	t.Logf("%s", r)
	assert.Assert(t, r.Code != 0, "init of an agent that cannot start succeeded\n%s", r)
	assert.Check(t, is.Contains(r.Stderr, "h1: the new agent did not start, so the old one runs again"))
	assert.Check(t, is.DeepEqual(agentBuilds(t), before))
	v := versionsOf(t, mustFleet(t, "version", "--format", "json"))
	assertAgents(t, v, v.Client.Version, api.APIVersion)

	// They work.
	removeServices(t, "stays")
	t.Cleanup(func() { removeServices(t, "stays") })
	mustFleet(t, "create", "--name", "stays", "--image", workload, "--node", "h2", "--memory", "64m")
	assert.Check(t, is.Contains(mustFleet(t, "migrate", "stays.1", "--to", "h3"), "migrated stays.1 from h2 to h3"))
}
