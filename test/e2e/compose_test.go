//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// shopCompose is a project as people write it: a build, a service that
// waits for another's health, a container_name, named volumes on the
// manager (h1) and on a worker (h3).
const shopCompose = `
name: e2eshop
services:
  db:
    image: fleet-workload:latest
    environment: {BALLAST_MB: "4"}
    volumes: [e2eshopdata:/data]
    healthcheck:
      test: ["CMD", "/workload", "get", "http://127.0.0.1:8080/"]
      interval: 1s
      retries: 30
    deploy:
      placement: {constraints: [node.hostname==h1]}
  web:
    image: fleet-workload:latest
    container_name: e2e-shop-web
    depends_on:
      db: {condition: service_healthy}
      cache: {condition: service_started}
    deploy:
      placement: {constraints: [node.hostname==h3]}
  cache:
    image: fleet-workload:latest
    volumes: [e2eshopcache:/cache]
    deploy:
      placement: {constraints: [node.hostname==h3]}
  app:
    build: ./app
    depends_on: [db]
    deploy:
      placement: {constraints: [node.hostname==h2]}
volumes:
  e2eshopdata: {}
  e2eshopcache: {}
`

const shopImage = "e2eshop-app:latest"

var shopServices = []string{"app", "cache", "db", "web"}

// shopProject writes the project's folder: its compose file and the app's
// build context (a Dockerfile FROM the workload, a file to COPY, and one
// that .dockerignore keeps out).
func shopProject(t *testing.T, compose string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "shop")
	for name, body := range map[string]string{
		"compose.yaml":      compose,
		"app/Dockerfile":    "FROM fleet-workload:latest\nLABEL e2e.built=yes\nCOPY . /ctx/\n",
		"app/greeting.txt":  "hello\n",
		"app/secret.txt":    "not for the image\n",
		"app/.dockerignore": "secret.txt\n",
	} {
		p := filepath.Join(dir, name)
		assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		assert.NilError(t, os.WriteFile(p, []byte(body), 0o644))
	}
	return filepath.Join(dir, "compose.yaml")
}

// forgetShop removes what a shop test may leave, before and after it.
func forgetShop(t *testing.T) {
	t.Helper()
	clean := func() {
		fleetCmd(t, "down", "-p", "e2eshop")
		fleetCmd(t, "down", "-p", "e2eother")
		for _, h := range fleetHostsBut("") {
			docker(t, h, "rmi", "-f", shopImage)
			docker(t, h, "volume", "rm", "e2eshopdata", "e2eshopcache")
		}
	}
	clean()
	t.Cleanup(clean)
}

// hasRow says whether a line of out starts with the words of row, however
// the table pads them.
func hasRow(out, row string) bool {
	want := strings.Join(strings.Fields(row), " ")
	for _, l := range strings.Split(out, "\n") {
		if got := strings.Join(strings.Fields(l), " "); got == want || strings.HasPrefix(got, want+" ") {
			return true
		}
	}
	return false
}

func startedAt(t *testing.T, name string) time.Time {
	t.Helper()
	c, ok := containerOn(t, name)
	assert.Assert(t, ok, "no %s on any engine", name)
	at, err := time.Parse(time.RFC3339Nano, c.State.StartedAt)
	assert.NilError(t, err)
	return at
}

// TestComposeProject: a dry run changes nothing; create builds the app's
// image once on the manager and sends it to h2, makes web only once db is
// healthy, names the project on every replica and gives web its
// container_name as an alias; the same project again, or a service of
// the same name in another project, is refused by name; down -v removes
// it all and the manager's volumes, and lists the others.
func TestComposeProject(t *testing.T) {
	initFleet(t)
	forgetShop(t)
	file := shopProject(t, shopCompose)
	configsBefore := mustDocker(t, manager, "config", "ls", "-q")

	// The plan, changing nothing.
	r := fleetCmd(t, "create", "-f", file, "--dry-run")
	assert.Assert(t, r.Code == 0, r.String())
	for _, row := range []string{"PROJECT e2eshop", "app " + shopImage + " h1", shopImage + " h2 to send from h1",
		"ORDER cache, db; then app, web", "web.1 h3 - - cache started, db healthy", "db.1 h1 - - -"} {
		assert.Check(t, hasRow(r.Stdout, row), "no row %q in\n%s", row, r.Stdout)
	}
	var plan struct {
		Builds   []struct{ Service, Image, Node string }
		Replicas []struct{ Name, Node string }
	}
	assert.NilError(t, json.Unmarshal([]byte(mustFleet(t, "create", "-f", file, "--dry-run", "--format", "json")), &plan))
	assert.Check(t, is.Len(plan.Builds, 1))
	where := map[string]string{}
	for _, rp := range plan.Replicas {
		where[rp.Name] = rp.Node
	}
	assert.Check(t, is.DeepEqual(where, map[string]string{"app.1": "h2", "cache.1": "h3", "db.1": "h1", "web.1": "h3"}))
	for _, s := range shopServices {
		assert.Check(t, is.Len(ofService(engineContainers(t), s), 0), "the dry run made %s", s)
	}
	assert.Check(t, is.Equal(mustDocker(t, manager, "config", "ls", "-q"), configsBefore), "the dry run stored something")
	assert.Check(t, docker(t, manager, "image", "inspect", shopImage).Code != 0, "the dry run built the image")

	// The project, in order.
	r = fleetCmd(t, "create", "-f", file)
	assert.Assert(t, r.Code == 0, r.String())
	assert.Check(t, is.Contains(r.Stderr, "service app: building "+shopImage+" on the manager"))
	assert.Check(t, is.Contains(r.Stderr, "Successfully tagged "+shopImage))
	assert.Check(t, is.Contains(r.Stderr, "image "+shopImage+": sending it from h1 to h2"))
	assert.Check(t, is.Contains(r.Stderr, "waiting for cache to be running before making web"), r.Stderr)
	assert.Check(t, is.Contains(r.Stderr, "waiting for db to be healthy before making app, web"), r.Stderr)
	assert.Check(t, startedAt(t, "web.1").Sub(startedAt(t, "db.1")) >= 900*time.Millisecond, "web started before db could be healthy")
	for _, s := range shopServices {
		cs := ofService(engineContainers(t), s)
		assert.Check(t, is.Len(cs, 1), s)
		for _, c := range cs {
			assert.Check(t, is.Equal(c.Config.Labels["com.docker.fleet.project"], "e2eshop"), c.Name)
		}
	}
	assert.Check(t, is.Equal(strings.TrimSpace(mustDocker(t, "h2", "image", "inspect", "--format", `{{index .Config.Labels "e2e.built"}}`, shopImage)), "yes"))
	tmp := "e2eshop-inspect"
	mustDocker(t, manager, "create", "--name", tmp, shopImage)
	t.Cleanup(func() { docker(t, manager, "rm", "-f", tmp) })
	assert.Check(t, docker(t, manager, "cp", tmp+":/ctx/greeting.txt", "-").Code == 0, "COPY . missed greeting.txt")
	assert.Check(t, docker(t, manager, "cp", tmp+":/ctx/secret.txt", "-").Code != 0, ".dockerignore was not honoured")
	docker(t, manager, "rm", "-f", tmp)
	// container_name is one more name of web.1 on the fleet network.
	out := mustDocker(t, "h1", "exec", "db.1", "/workload", "get", "http://e2e-shop-web:8080/")
	assert.Check(t, is.Contains(out, `"hostname":"web.1"`), out)

	// Again: applied to the project, and nothing differs; a changed
	// environment updates that service alone (update_test.go has more);
	// another project may not have a service of the same name.
	r = fleetCmd(t, "create", "-f", file, "--dry-run")
	assert.Check(t, r.Code == 0, r.String())
	for _, svc := range shopServices {
		assert.Check(t, is.Regexp(`(?m)^`+svc+` +unchanged`, r.Stdout), r.String())
	}
	changed := shopProject(t, strings.Replace(shopCompose, `BALLAST_MB: "4"`, `BALLAST_MB: "5"`, 1))
	r = fleetCmd(t, "create", "-f", changed, "--dry-run")
	assert.Check(t, is.Regexp(`(?m)^db +update +env$`, r.Stdout), r.String())
	r = fleetCmd(t, "create", "-f", file, "--project-name", "e2eother")
	assert.Check(t, r.Code == 1, r.String())
	assert.Check(t, is.Contains(r.Stderr, "service app already exists in project e2eshop, so project e2eother cannot have one of that name"))

	// Down, with the volumes.
	r = fleetCmd(t, "down", "-f", file, "-v")
	assert.Assert(t, r.Code == 0, r.String())
	for _, want := range []string{"web.1\n", "db\n", "volume e2eshopdata removed from h1", "volume e2eshopcache left on h3: the agents cannot remove volumes yet"} {
		assert.Check(t, is.Contains(r.Stdout, want), r.Stdout)
	}
	assert.Check(t, strings.Index(r.Stdout, "web.1") < strings.Index(r.Stdout, "db.1"), "web, which depends on db, goes first:\n%s", r.Stdout)
	for _, s := range shopServices {
		assert.Check(t, is.Len(ofService(engineContainers(t), s), 0), s)
	}
	assert.Check(t, docker(t, "h1", "volume", "inspect", "e2eshopdata").Code != 0, "e2eshopdata is still on h1")
	assert.Check(t, is.Equal(mustDocker(t, manager, "config", "ls", "-q"), configsBefore))
	r = fleetCmd(t, "down", "-p", "e2eshop")
	assert.Check(t, r.Code == 1, r.String())
	assert.Check(t, is.Contains(r.Stderr, `docker fleet down: no project "e2eshop" in the fleet`))
}

// TestComposeDependencyNeverReady: a dependency that stays unhealthy past
// --wait-timeout fails the create, naming the service and where it was
// stuck, and nothing of the project is left.
func TestComposeDependencyNeverReady(t *testing.T) {
	initFleet(t)
	removeServices(t, "e2ewaitdb", "e2ewaitweb")
	file := filepath.Join(t.TempDir(), "compose.yaml")
	assert.NilError(t, os.WriteFile(file, []byte(`
name: e2ewait
services:
  e2ewaitdb:
    image: fleet-workload:latest
    healthcheck:
      test: ["CMD", "/workload", "get", "http://127.0.0.1:1/"]
      interval: 1s
      retries: 1000
  e2ewaitweb:
    image: fleet-workload:latest
    depends_on:
      e2ewaitdb: {condition: service_healthy}
`), 0o644))
	configsBefore := mustDocker(t, manager, "config", "ls", "-q")
	t0 := time.Now()
	r := fleetCmd(t, "create", "-f", file, "--wait-timeout", "4s")
	assert.Check(t, r.Code == 1, r.String())
	assert.Check(t, time.Since(t0) < 60*time.Second, "took %s", time.Since(t0))
	assert.Check(t, is.Contains(r.Stderr, "service e2ewaitweb waited 4s for e2ewaitdb to be healthy: e2ewaitdb.1 on "), r.Stderr)
	assert.Check(t, is.Contains(r.Stderr, "is running, health starting"), r.Stderr)
	assert.Check(t, is.Len(ofService(engineContainers(t), "e2ewaitdb"), 0))
	assert.Check(t, is.Len(ofService(engineContainers(t), "e2ewaitweb"), 0))
	assert.Check(t, is.Equal(mustDocker(t, manager, "config", "ls", "-q"), configsBefore))
}

// TestComposeBuildFails: a build that fails stops the create before
// anything is stored or made.
func TestComposeBuildFails(t *testing.T) {
	initFleet(t)
	forgetShop(t)
	file := shopProject(t, `
name: e2eshop
services:
  db: {image: fleet-workload:latest}
  app: {build: ./app}
`)
	assert.NilError(t, os.WriteFile(filepath.Join(filepath.Dir(file), "app", "Dockerfile"),
		[]byte("FROM fleet-workload:latest\nRUN [\"/workload\", \"no-such-subcommand\"]\n"), 0o644))
	configsBefore := mustDocker(t, manager, "config", "ls", "-q")
	r := fleetCmd(t, "create", "-f", file)
	assert.Check(t, r.Code == 1, r.String())
	assert.Check(t, is.Contains(r.Stderr, "building "+shopImage+" for service app: "), r.Stderr)
	assert.Check(t, is.Contains(r.Stderr, "returned a non-zero code"), r.Stderr)
	assert.Check(t, is.Len(ofService(engineContainers(t), "db"), 0))
	assert.Check(t, is.Equal(mustDocker(t, manager, "config", "ls", "-q"), configsBefore))
}
