package specfile

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/spec"
)

func TestComposeProjectName(t *testing.T) {
	two := "services:\n  web: {image: x}\n  db: {image: y}\n"
	r, err := parse(t, two) // the folder "Shop", normalized
	assert.NilError(t, err)
	assert.Check(t, is.Equal(r.Project, "shop"))
	for _, s := range r.Services {
		assert.Check(t, is.Equal(s.Project, "shop"), s.Name)
	}
	assert.Check(t, is.Equal(r.Services[1].Name, "web"), "services keep their names")

	r, err = parse(t, "name: ${TAG}-Blog\n"+two) // name: wins over the folder, interpolated and normalized
	assert.NilError(t, err)
	assert.Check(t, is.Equal(r.Project, "v1-blog"))

	r, err = parse(t, "name: blog\n"+two, WithProject("news")) // -p wins over name:
	assert.NilError(t, err)
	assert.Check(t, is.Equal(r.Project, "news"))
	assert.Check(t, is.Equal(r.Services[0].Project, "news"))

	_, err = parse(t, two, WithProject("My Shop"))
	assert.Check(t, is.ErrorContains(err, `invalid project name "My Shop"`))

	dir := filepath.Join(t.TempDir(), "__")
	assert.NilError(t, os.Mkdir(dir, 0o755))
	_, err = Parse("f", []byte(two), dir, nil)
	assert.Check(t, is.Error(err, `f: name: missing, and the folder "__" gives no project name: add name: to the file or give --project-name`))
	r, err = Parse("f", []byte("name: ok\n"+two), dir, nil)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(r.Project, "ok"))
}

func TestComposeDependsOn(t *testing.T) {
	r, err := parse(t, `
services:
  web:
    image: x
    depends_on: [cache]
  api:
    image: x
    depends_on:
      db: {condition: service_healthy}
      cache: {condition: service_started}
      metrics: {condition: service_started, required: false}
      migrate: {condition: service_completed_successfully}
  db:
    image: x
    healthcheck: {test: [CMD, pg_isready]}
  cache: {image: x}
  migrate: {image: x, command: [migrate, up]}
`)
	assert.NilError(t, err)
	deps := map[string]map[string]string{}
	for _, s := range r.Services {
		deps[s.Name] = s.DependsOn
	}
	assert.Check(t, is.DeepEqual(deps, map[string]map[string]string{
		"web":     {"cache": spec.DependsStarted},
		"api":     {"db": spec.DependsHealthy, "cache": spec.DependsStarted, "migrate": spec.DependsCompleted}, // metrics is optional and absent
		"db":      nil,
		"cache":   nil,
		"migrate": nil,
	}))

	for doc, want := range map[string]string{
		"  a: {image: x, depends_on: [b]}\n":                                                                              "services.a.depends_on: b: no such service in this file",
		"  a: {image: x, depends_on: [b]}\n  b: {image: x, profiles: [debug]}\n":                                          "services.a.depends_on: b needs profile debug, and docker fleet enables no profile",
		"  a: {image: x, depends_on: {b: {condition: service_started, restart: true}}}\n  b: {image: x}\n":                "services.a.depends_on.b.restart: true is not supported by docker fleet",
		"  a: {image: x, depends_on: {b: {condition: service_healthy}}}\n  b: {image: x, healthcheck: {disable: true}}\n": "services.a.depends_on.b.condition: service_healthy, but b's healthcheck is disabled",
		"  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [c]}\n  c: {image: x, depends_on: [a]}\n":          "f: services: depends_on makes a cycle: a → b → c → a",
		"  a: {image: x, depends_on: [a]}\n":                                                                              "depends on itself",
	} {
		_, err := parse(t, "services:\n"+doc)
		assert.Check(t, is.ErrorContains(err, want), doc)
	}
}

func TestComposeContainerName(t *testing.T) {
	r, err := parse(t, "services:\n  web: {image: x, container_name: shop-web}\n")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(r.Services[0].Name, "web"), "the replica is still web.1")
	assert.Check(t, is.DeepEqual(r.Services[0].Aliases, []string{"shop-web"}))

	_, err = parse(t, "services:\n  web: {image: x, container_name: shop-web, deploy: {replicas: 2}}\n")
	assert.Check(t, is.ErrorContains(err, "services.web.container_name: only for a service of one replica, and it has 2"))
	_, err = parse(t, "services:\n  a: {image: x, container_name: one}\n  b: {image: x, container_name: one}\n")
	assert.Check(t, is.ErrorContains(err, `services.b.container_name: "one" is services.a's too`))
}

// buildDir is a project folder with a Dockerfile in sub.
func buildDir(t *testing.T) string {
	t.Helper()
	dir := shopDir(t)
	assert.NilError(t, os.MkdirAll(filepath.Join(dir, "sub", "docker"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "sub", "Dockerfile"), []byte("FROM scratch\n"), 0o644))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "sub", "docker", "Dockerfile.dev"), []byte("FROM scratch\n"), 0o644))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644))
	return dir
}

func TestComposeBuild(t *testing.T) {
	dir := buildDir(t)
	r, err := Parse("f", []byte(`
services:
  web:
    build: ./sub
  api:
    image: my/api:2
    build:
      context: sub
      dockerfile: docker/Dockerfile.dev
      args: {VERSION: "1.2", EMPTY: ""}
      target: prod
      labels: {team: a}
      no_cache: true
      pull: true
  db: {image: postgres:15}
`), dir, nil)
	assert.NilError(t, err)
	sub := filepath.Join(dir, "sub")
	v, empty := "1.2", ""
	assert.Check(t, is.DeepEqual(r.Builds, []Build{
		{Service: "api", Image: "my/api:2", Context: sub, Dockerfile: "docker/Dockerfile.dev",
			Args: map[string]*string{"VERSION": &v, "EMPTY": &empty}, Target: "prod", Labels: map[string]string{"team": "a"}, NoCache: true, Pull: true},
		{Service: "web", Image: "shop-web:latest", Context: sub, Dockerfile: "Dockerfile"},
	}))
	images := map[string]string{}
	for _, s := range r.Services {
		images[s.Name] = s.Image
	}
	assert.Check(t, is.DeepEqual(images, map[string]string{"api": "my/api:2", "web": "shop-web:latest", "db": "postgres:15"}))

	for doc, want := range map[string]string{
		"build: {context: ., ssh: [default]}":              "services.a.build.ssh: not supported by docker fleet: it needs BuildKit, and docker fleet builds with the manager engine's classic builder",
		"build: {context: ., secrets: [s]}":                "services.a.build.secrets: not supported by docker fleet: it needs BuildKit",
		"build: {context: ., cache_from: [a]}":             "services.a.build.cache_from: not supported by docker fleet: it needs BuildKit",
		"build: {context: ., platforms: [linux/arm64]}":    "services.a.build.platforms: not supported by docker fleet: replicas run",
		"build: {context: ., network: host}":               "services.a.build.network: not supported by docker fleet (supported here: args, context, dockerfile, labels, no_cache, pull, target)",
		"build: ./nowhere":                                 "services.a.build.context: " + filepath.Join(dir, "nowhere") + ": not a directory",
		"build: {context: sub, dockerfile: ../Dockerfile}": "services.a.build.dockerfile: ../Dockerfile is outside the context",
		"build: {context: sub, dockerfile: Nope}":          "services.a.build.dockerfile: " + filepath.Join(sub, "Nope") + ": no such file",
		"build: https://github.com/docker/x.git":           `services.a.build.context: "https://github.com/docker/x.git": not supported by docker fleet: it builds from a local directory`,
	} {
		_, err := Parse("f", []byte("services:\n  a:\n    "+doc+"\n"), dir, nil)
		assert.Check(t, is.ErrorContains(err, want), doc)
	}
}

func TestComposeExternalVolume(t *testing.T) {
	r, err := parse(t, `
services:
  db:
    image: x
    volumes: [data:/data, keep:/keep, /srv:/srv]
volumes:
  data: {}
  keep: {external: true}
`)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(r.Services[0].Volumes, []spec.Volume{
		{Source: "data", Target: "/data"},
		{Source: "keep", Target: "/keep", External: true},
		{Source: "/srv", Target: "/srv"},
	}))
}
