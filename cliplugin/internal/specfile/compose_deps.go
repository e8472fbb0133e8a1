package specfile

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/docker-fleet/fleet/shared/spec"
)

// dependsOn reads a service's depends_on (the short list form is
// service_started) against the services the file runs. A cycle is found
// once every service is read (spec.Order).
func dependsOn(c types.ServiceConfig, project *types.Project) (map[string]string, error) {
	if len(c.DependsOn) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, dep := range slices.Sorted(maps.Keys(c.DependsOn)) {
		d := c.DependsOn[dep]
		at := "depends_on." + dep
		// compose-go makes each link a dependency with restart: true of its
		// own; only one the file asked for is refused.
		if d.Restart && !linked(c, dep) {
			return nil, fmt.Errorf("%s.restart: true is not supported by docker fleet: it makes a service once, and does not restart it when one it depends on restarts", at)
		}
		cond := d.Condition
		switch cond {
		case "":
			cond = spec.DependsStarted
		case spec.DependsStarted, spec.DependsHealthy, spec.DependsCompleted:
		default:
			return nil, fmt.Errorf("%s.condition: %q: use %s, %s or %s", at, cond, spec.DependsStarted, spec.DependsHealthy, spec.DependsCompleted)
		}
		target, runs := project.Services[dep]
		switch {
		case runs:
		case !d.Required:
			continue // docker compose too goes on without an optional one
		case project.DisabledServices[dep].Name != "":
			return nil, fmt.Errorf("depends_on: %s needs profile %s, and docker fleet enables no profile", dep, strings.Join(project.DisabledServices[dep].Profiles, " or "))
		case linked(c, dep):
			return nil, fmt.Errorf("links: %s: no such service in this file", dep)
		default:
			return nil, fmt.Errorf("depends_on: %s: no such service in this file", dep)
		}
		if h := target.HealthCheck; cond == spec.DependsHealthy && h != nil && (h.Disable || slices.Equal(h.Test, []string{"NONE"})) {
			return nil, fmt.Errorf("%s.condition: %s, but %s's healthcheck is disabled", at, cond, dep)
		}
		out[dep] = cond
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// linked says whether c links to service dep.
func linked(c types.ServiceConfig, dep string) bool {
	return slices.ContainsFunc(c.Links, func(l string) bool {
		target, _, _ := strings.Cut(l, ":")
		return target == dep
	})
}
