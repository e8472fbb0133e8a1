package commands

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/cliplugin/internal/deploy"
)

func TestDownProjectName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Shop")
	assert.NilError(t, os.Mkdir(dir, 0o755))
	compose := filepath.Join(dir, "compose.yaml")
	assert.NilError(t, os.WriteFile(compose, []byte("services:\n  web: {image: nginx}\n"), 0o644))
	task := filepath.Join(dir, "task.json")
	assert.NilError(t, os.WriteFile(task, []byte(`{"container_name": "c", "image": "i"}`), 0o644))
	stdin := strings.NewReader("")

	for _, c := range []struct {
		opts downOptions
		want string
		err  string
	}{
		{opts: downOptions{project: "blog"}, want: "blog"},
		{opts: downOptions{file: compose}, want: "shop"},
		{opts: downOptions{file: compose, project: "blog"}, want: "blog"},
		{opts: downOptions{}, err: "name the project: -f FILE or -p PROJECT"},
		{opts: downOptions{file: task}, err: "-f " + task + ": a RESTfulSwarm task has no project: remove its services with docker fleet rm"},
		{opts: downOptions{file: filepath.Join(dir, "none.yaml")}, err: "no such file"},
	} {
		got, err := c.opts.projectName(stdin)
		if c.err != "" {
			assert.Check(t, is.ErrorContains(err, c.err), "%+v", c.opts)
			continue
		}
		assert.Check(t, err, "%+v", c.opts)
		assert.Check(t, is.Equal(got, c.want))
	}

	cmd := newDownCommand(nil)
	assert.NilError(t, cmd.Flags().Parse([]string{"-p", "shop", "-v"}))
	v, _ := cmd.Flags().GetBool("volumes")
	p, _ := cmd.Flags().GetString("project-name")
	assert.Check(t, v && p == "shop")
}

func TestRenderDown(t *testing.T) {
	var out bytes.Buffer
	assert.NilError(t, renderDown(&out, &deploy.DownResult{Project: "shop", Removed: []string{"web.1", "web", "db.1", "db"},
		Volumes: []deploy.VolumeResult{
			{Node: "h1", Volume: "data", Removed: true},
			{Node: "h2", Volume: "data", Why: "the agents cannot remove volumes yet: remove it there with docker volume rm"},
		}}))
	assert.Check(t, is.Equal(out.String(), `web.1
web
db.1
db
volume data removed from h1
volume data left on h2: the agents cannot remove volumes yet: remove it there with docker volume rm
`))
}
