package deploy

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/spec"
)

func TestRemovalOrder(t *testing.T) {
	web := projectService("shop", "web", "x")
	web.DependsOn = map[string]string{"api": spec.DependsStarted}
	api := projectService("shop", "api", "x")
	api.DependsOn = map[string]string{"db": spec.DependsHealthy}
	svcs := []spec.Service{projectService("shop", "db", "x"), api, web, projectService("shop", "cache", "x")}
	assert.Check(t, is.DeepEqual(removalOrder(svcs), []string{"web", "api", "cache", "db"}), "dependents first")
}

func TestNamedVolumes(t *testing.T) {
	s := projectService("shop", "db", "x")
	s.Volumes = []spec.Volume{
		{Source: "data", Target: "/data"},
		{Source: "keep", Target: "/keep", External: true},
		{Source: "/srv/db", Target: "/srv"},
	}
	assert.Check(t, is.DeepEqual(namedVolumes(s), []string{"data"}), "not host paths, not external volumes")
}

func TestProjectsOf(t *testing.T) {
	assert.Check(t, is.Equal(projectsOf([]spec.Service{projectService("", "a", "x")}), "it has none"))
	assert.Check(t, is.Equal(projectsOf([]spec.Service{
		projectService("shop", "a", "x"), projectService("blog", "b", "x"), projectService("shop", "c", "x"), projectService("", "d", "x"),
	}), "projects: blog, shop"))
}
