//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// TestComposeCopiesFilesBesideIt: a file and a folder beside the Compose
// file that a service bind-mounts are copied into the replica (no bind of
// a node's path), and move with it when it migrates; scale, which has only
// the stored definition, refuses to make a replica without them.
func TestComposeCopiesFilesBesideIt(t *testing.T) {
	initFleet(t)
	removeServices(t, "cpy")
	t.Cleanup(func() { removeServices(t, "cpy") })
	dir := filepath.Join(t.TempDir(), "cpyproj")
	assert.NilError(t, os.MkdirAll(filepath.Join(dir, "site", "img"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "app.conf"), []byte("answer = 42\n"), 0o640))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "site", "index.html"), []byte("<h1>fleet</h1>"), 0o644))
	file := filepath.Join(dir, "compose.yaml")
	assert.NilError(t, os.WriteFile(file, []byte(`services:
  cpy:
    image: fleet-workload:latest
    environment: {BALLAST_MB: "4"}
    volumes:
      - ./app.conf:/etc/app.conf:ro
      - ./site:/srv/www/site
    deploy:
      placement:
        constraints: [node.hostname==h2]
`), 0o644))
	mustFleet(t, "create", "-f", file)

	check := func(host string) {
		t.Helper()
		o := inspectOptions(t, host, "cpy.1")
		assert.Assert(t, o.State.Pid > 0, "cpy.1 does not run on %s", host)
		assert.Check(t, is.Equal(readProc(t, o.State.Pid, "root/etc/app.conf"), "answer = 42\n"), host)
		assert.Check(t, is.Equal(readProc(t, o.State.Pid, "root/srv/www/site/index.html"), "<h1>fleet</h1>"), host)
		fi, err := os.Stat(filepath.Join("/proc", strconv.Itoa(o.State.Pid), "root/srv/www/site/img"))
		assert.Check(t, err == nil && fi.IsDir(), "%s: the empty folder: %v", host, err)
		mounts := mustDocker(t, host, "inspect", "--format", "{{range .Mounts}}{{.Type}}:{{.Source}} {{end}}", "cpy.1")
		assert.Check(t, !is.Contains(mounts, dir)().Success(), "%s binds the client's path: %s", host, mounts)
	}
	check("h2")
	assert.Check(t, is.Contains(mustFleet(t, "migrate", "cpy.1", "--to", "h3"), "migrated cpy.1 from h2 to h3"))
	check("h3")

	r := fleetCmd(t, "scale", "cpy=2")
	assert.Check(t, r.Code != 0, r.String())
	assert.Check(t, is.Contains(r.Stderr, "./app.conf (for /etc/app.conf), beside the service's Compose file, is not on node"))
	assert.Check(t, is.Len(ofService(engineContainers(t), "cpy"), 1), "scale made a replica without its files")
}
