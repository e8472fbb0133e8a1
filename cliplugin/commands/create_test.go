package commands

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/cliplugin/internal/deploy"
	"github.com/docker-fleet/fleet/shared/spec"
)

// createServices parses create's flags as the command line would and
// builds the definitions from them.
func createServices(t *testing.T, args ...string) ([]spec.Service, error) {
	t.Helper()
	cmd := newCreateCommand(nil)
	assert.NilError(t, cmd.Flags().Parse(args))
	var opts createOptions
	// newCreateCommand binds its own options: read them back from the flags.
	f := cmd.Flags()
	opts.file, _ = f.GetString("file")
	opts.name, _ = f.GetString("name")
	opts.image, _ = f.GetString("image")
	opts.replicas, _ = f.GetInt("replicas")
	opts.strategy, _ = f.GetString("strategy")
	opts.checkpoint, _ = f.GetString("checkpoint-every")
	opts.project, _ = f.GetString("project-name")
	opts.publish, _ = f.GetStringArray("publish")
	opts.node, _ = f.GetString("node")
	opts.constraint, _ = f.GetStringArray("constraint")
	opts.health.cmd, _ = f.GetString("health-cmd")
	opts.health.interval, _ = f.GetDuration("health-interval")
	opts.health.retries, _ = f.GetInt("health-retries")
	opts.health.none, _ = f.GetBool("no-healthcheck")
	r, err := opts.services(cmd, strings.NewReader(""), nil)
	if err != nil {
		return nil, err
	}
	return r.Services, nil
}

func TestCreateCheckpointEvery(t *testing.T) {
	svcs, err := createServices(t, "--name", "db", "--image", "postgres:15", "--checkpoint-every", "30s")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(svcs[0].CheckpointEvery, spec.Duration(30*time.Second)))

	svcs, err = createServices(t, "--name", "db", "--image", "postgres:15")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(svcs[0].CheckpointEvery, spec.Duration(0)))

	for v, want := range map[string]string{
		"12q": `--checkpoint-every: "12q" is not a duration`,
		"1s":  "--checkpoint-every: 1s is out of range",
		"25h": "--checkpoint-every: 25h0m0s is out of range",
	} {
		_, err := createServices(t, "--name", "db", "--image", "postgres:15", "--checkpoint-every", v)
		assert.Check(t, is.ErrorContains(err, want), v)
	}

	_, err = createServices(t, "-f", "compose.yaml", "--checkpoint-every", "30s")
	assert.Check(t, is.ErrorContains(err, "--checkpoint-every: give the service in the file or in flags, not both"))
}

// docker run's health flags give the service its healthcheck.
func TestCreateHealthFlags(t *testing.T) {
	svcs, err := createServices(t, "--name", "api", "--image", "x", "--health-cmd", "curl -f localhost", "--health-interval", "5s", "--health-retries", "2")
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(svcs[0].Healthcheck, &spec.Healthcheck{Test: []string{"CMD-SHELL", "curl -f localhost"}, Interval: spec.Duration(5 * time.Second), Retries: 2}))
	svcs, err = createServices(t, "--name", "api", "--image", "x", "--no-healthcheck")
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(svcs[0].Healthcheck.Test, []string{"NONE"}))
	_, err = createServices(t, "--name", "api", "--image", "x", "--health-retries", "2")
	assert.Check(t, is.ErrorContains(err, "give --health-cmd too"))
	_, err = createServices(t, "-f", "compose.yaml", "--health-cmd", "true")
	assert.Check(t, is.ErrorContains(err, "--health-*: give the healthcheck in the file or in flags"))
}

func TestCreateProjectName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Shop")
	assert.NilError(t, os.Mkdir(dir, 0o755))
	compose := filepath.Join(dir, "compose.yaml")
	assert.NilError(t, os.WriteFile(compose, []byte("services:\n  web: {image: nginx}\n"), 0o644))
	task := filepath.Join(dir, "task.json")
	assert.NilError(t, os.WriteFile(task, []byte(`{"container_name": "c", "image": "i"}`), 0o644))

	svcs, err := createServices(t, "-f", compose)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(svcs[0].Project, "shop"))
	assert.Check(t, is.Equal(svcs[0].Strategy, spec.Spread))
	svcs, err = createServices(t, "-f", compose, "--project-name", "blog")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(svcs[0].Project, "blog"))

	_, err = createServices(t, "--name", "web", "--image", "nginx", "--project-name", "blog")
	assert.Check(t, is.Error(err, "--project-name: names a Compose file's project (-f)"))
	_, err = createServices(t, "-f", task, "--project-name", "blog")
	assert.Check(t, is.Error(err, "--project-name: names a Compose file's project, and "+task+" is a RESTfulSwarm task"))

	// -p stays docker run's --publish.
	svcs, err = createServices(t, "--name", "web", "--image", "nginx", "-p", "8080:80")
	assert.NilError(t, err)
	assert.Check(t, is.Len(svcs[0].Ports, 1))
}

func TestCreateFlagsDefaults(t *testing.T) {
	cmd := newCreateCommand(nil)
	assert.NilError(t, cmd.Flags().Parse(nil))
	wait, err := cmd.Flags().GetDuration("wait-timeout")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(wait, 2*time.Minute))
	dry, err := cmd.Flags().GetBool("dry-run")
	assert.NilError(t, err)
	assert.Check(t, !dry)
}

func TestRenderPlan(t *testing.T) {
	var out bytes.Buffer
	assert.NilError(t, renderPlan(&out, &deploy.Plan{
		Project: "shop",
		Builds:  []deploy.BuildPlan{{Service: "web", Image: "shop-web:latest", Context: "/src/shop", Dockerfile: "Dockerfile", Node: "h1"}},
		Images: []deploy.ImagePlan{
			{Image: "postgres:15", Node: "h2", Action: deploy.ImageHas},
			{Image: "redis:7", Node: "h3", Action: deploy.ImagePull},
			{Image: "shop-web:latest", Node: "h1", Action: deploy.ImageBuild},
			{Image: "shop-web:latest", Node: "h3", Action: deploy.ImageSend, From: "h1"},
		},
		Order: [][]string{{"cache", "db"}, {"web"}},
		Replicas: []deploy.ReplicaPlan{
			{Name: "db.1", Service: "db", Node: "h2", Cores: 1, Memory: 64 << 20},
			{Name: "cache.1", Service: "cache", Node: "h3", Cpuset: "2"},
			{Name: "web.1", Service: "web", Node: "h1", After: map[string]string{"db": spec.DependsHealthy, "cache": spec.DependsStarted}},
		},
	}))
	assert.Check(t, is.Equal(out.String(), `PROJECT shop

BUILD  IMAGE            ON  CONTEXT    DOCKERFILE
web    shop-web:latest  h1  /src/shop  Dockerfile

IMAGE            NODE  HOW
postgres:15      h2    has it
redis:7          h3    to pull (no node has it)
shop-web:latest  h1    to build on the manager
shop-web:latest  h3    to send from h1

ORDER  cache, db; then web

REPLICA  NODE  CPUS      MEMORY  AFTER
db.1     h2    1         64MiB   -
cache.1  h3    cpuset 2  -       -
web.1    h1    -         -       cache started, db healthy

(dry run: nothing was built, sent, stored or created)
`))
}
