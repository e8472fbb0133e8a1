package deploy

import (
	"testing"

	"github.com/containerd/errdefs"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/spec"
)

func projectService(project, name, image string) spec.Service {
	return spec.Service{Project: project, Name: name, Image: image, Replicas: 1, Strategy: spec.Spread}
}

func TestCheckNewServiceOfAnotherProject(t *testing.T) {
	stored := []spec.Service{projectService("shop", "web", "nginx"), projectService("", "db", "postgres")}

	err := checkNew([]spec.Service{projectService("blog", "web", "nginx")}, stored, false)
	assert.Check(t, errdefs.IsAlreadyExists(err))
	assert.Check(t, is.Error(err, "service web already exists in project shop, so project blog cannot have one of that name (service names are fleet-wide): rename it in the file, or remove project shop with docker fleet down -p shop"))

	err = checkNew([]spec.Service{projectService("blog", "db", "postgres")}, stored, false)
	assert.Check(t, is.ErrorContains(err, "service db already exists outside any project, so project blog cannot have one of that name"))

	err = checkNew([]spec.Service{projectService("", "web", "nginx")}, stored, false)
	assert.Check(t, is.ErrorContains(err, "service web already exists in project shop: give this one another name, or remove project shop with docker fleet down -p shop"))

	err = checkNew([]spec.Service{projectService("", "db", "postgres")}, stored, false)
	assert.Check(t, is.ErrorContains(err, "service db already exists: scale it with `docker fleet scale db=N`"))

	assert.NilError(t, checkNew([]spec.Service{projectService("blog", "api", "x"), projectService("blog", "cache", "y")}, stored, false))
	assert.NilError(t, checkNew(nil, stored, false))
}

func TestCheckNewProjectThatExists(t *testing.T) {
	stored := []spec.Service{
		projectService("shop", "web", "nginx:1"),
		projectService("shop", "db", "postgres"),
		projectService("shop", "old", "x"),
		projectService("blog", "api", "y"),
	}
	web := projectService("shop", "web", "nginx:2")
	web.Replicas = 3
	file := []spec.Service{web, projectService("shop", "db", "postgres"), projectService("shop", "cache", "redis")}
	err := checkNew(file, stored, false)
	assert.Check(t, errdefs.IsAlreadyExists(err))
	assert.Check(t, is.Error(err, "project shop already exists (db, old, web): "+
		"the file and the fleet differ in cache (only in the file), old (only in the fleet), web (image, replicas); "+
		"docker fleet create -f FILE applies it to the project (only what changed), or remove the project first with docker fleet down -p shop"))
	// Applying the file makes its new services in the project.
	assert.NilError(t, checkNew([]spec.Service{projectService("shop", "cache", "redis")}, stored, true))

	same := []spec.Service{projectService("blog", "api", "y")}
	assert.Check(t, is.ErrorContains(checkNew(same, stored, false), "project blog already exists (api): the file's services are the same as the fleet's;"))
}

// A definition read back from the swarm (JSON) equals the file's: empty
// and absent fields are the same.
func TestDifferencesIgnoreEmptyFields(t *testing.T) {
	a := projectService("shop", "web", "nginx")
	a.Labels = map[string]string{}
	a.Env = []string{}
	b := projectService("shop", "web", "nginx")
	assert.Check(t, is.Equal(differences([]spec.Service{a}, []spec.Service{b}), "the file's services are the same as the fleet's"))
	b.DependsOn = map[string]string{"db": spec.DependsHealthy}
	b.Aliases = []string{"w"}
	assert.Check(t, is.Equal(differences([]spec.Service{a}, []spec.Service{b}), "the file and the fleet differ in web (aliases, dependsOn)"))
}
