package spec

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Conditions of DependsOn, as Compose's depends_on names them.
const (
	// DependsStarted waits until the dependency's replicas run.
	DependsStarted = "service_started"
	// DependsHealthy waits until the engine calls every replica of the
	// dependency healthy.
	DependsHealthy = "service_healthy"
	// DependsCompleted waits until every replica of the dependency has
	// exited with code 0 (a one-shot job: a migration, a seed), which the
	// agents report as api.FleetContainer.ExitCode.
	DependsCompleted = "service_completed_successfully"
)

func (s *Service) validateDependsOn() []error {
	var errs []error
	for _, dep := range slices.Sorted(maps.Keys(s.DependsOn)) {
		switch cond := s.DependsOn[dep]; {
		case !serviceName.MatchString(dep):
			errs = append(errs, fieldErr("depends_on", "%q is not a service name", dep))
		case dep == s.Name:
			errs = append(errs, fieldErr("depends_on", "%s depends on itself", dep))
		case cond != DependsStarted && cond != DependsHealthy && cond != DependsCompleted:
			errs = append(errs, fieldErr("depends_on", "%s: condition %q: use %s, %s or %s", dep, cond, DependsStarted, DependsHealthy, DependsCompleted))
		}
	}
	return errs
}

// Order sorts services into the waves create makes them in: a wave's
// services depend only on services of earlier waves, and each wave is
// sorted by name. A dependency on a service not among svcs is left out
// (it is not made here); a cycle is an error naming it ("a → b → a").
func Order(svcs []Service) ([][]string, error) {
	deps := map[string][]string{}
	for _, s := range svcs {
		deps[s.Name] = nil
	}
	for _, s := range svcs {
		for d := range s.DependsOn {
			if _, ok := deps[d]; ok {
				deps[s.Name] = append(deps[s.Name], d)
			}
		}
	}
	done := map[string]bool{}
	var waves [][]string
	for len(done) < len(deps) {
		var wave []string
		for name, ds := range deps {
			if !done[name] && !slices.ContainsFunc(ds, func(d string) bool { return !done[d] }) {
				wave = append(wave, name)
			}
		}
		if len(wave) == 0 {
			return nil, fmt.Errorf("depends_on makes a cycle: %s", strings.Join(cycle(deps, done), " → "))
		}
		slices.Sort(wave)
		for _, name := range wave {
			done[name] = true
		}
		waves = append(waves, wave)
	}
	return waves, nil
}

// cycle finds a cycle among the services not done, each of which waits on
// another not done: following the first such dependency from the first
// name must come back to a name already seen.
func cycle(deps map[string][]string, done map[string]bool) []string {
	var left []string
	for name := range deps {
		if !done[name] {
			left = append(left, name)
		}
	}
	slices.Sort(left)
	seen := map[string]int{}
	var path []string
	for at := left[0]; ; {
		if i, ok := seen[at]; ok {
			return append(path[i:], at)
		}
		seen[at] = len(path)
		path = append(path, at)
		next := slices.Sorted(slices.Values(slices.DeleteFunc(slices.Clone(deps[at]), func(d string) bool { return done[d] })))
		at = next[0]
	}
}
