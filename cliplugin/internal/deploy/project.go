package deploy

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/docker-fleet/fleet/shared/spec"
)

// checkNew refuses to create what exists: a project whose services are
// stored already, unless intoProject (Apply makes a file's new services in
// its project; a create never does), or a service whose name is taken,
// naming the project that has it.
func checkNew(svcs, stored []spec.Service, intoProject bool) error {
	if len(svcs) == 0 {
		return nil
	}
	if project := svcs[0].Project; project != "" && !intoProject {
		if mine := inProject(stored, project); len(mine) > 0 {
			return errdefs.ErrAlreadyExists.WithMessage(fmt.Sprintf(
				"project %s already exists (%s): %s; docker fleet create -f FILE applies it to the project (only what changed), or remove the project first with docker fleet down -p %s",
				project, strings.Join(serviceNames(mine), ", "), differences(svcs, mine), project))
		}
	}
	byName := map[string]spec.Service{}
	for _, s := range stored {
		byName[s.Name] = s
	}
	for _, s := range svcs {
		old, ok := byName[s.Name]
		if !ok {
			continue
		}
		var msg string
		switch {
		case old.Project == "" && s.Project == "":
			msg = fmt.Sprintf("service %s already exists: scale it with `docker fleet scale %s=N` or remove it with `docker fleet rm %s`", s.Name, s.Name, s.Name)
		case s.Project == "":
			msg = fmt.Sprintf("service %s already exists in project %s: give this one another name, or remove project %s with docker fleet down -p %s", s.Name, old.Project, old.Project, old.Project)
		case old.Project == "":
			msg = fmt.Sprintf("service %s already exists outside any project, so project %s cannot have one of that name (service names are fleet-wide): rename it in the file, or remove the other with docker fleet rm %s", s.Name, s.Project, s.Name)
		default:
			msg = fmt.Sprintf("service %s already exists in project %s, so project %s cannot have one of that name (service names are fleet-wide): rename it in the file, or remove project %s with docker fleet down -p %s", s.Name, old.Project, s.Project, old.Project, old.Project)
		}
		return errdefs.ErrAlreadyExists.WithMessage(msg)
	}
	return nil
}

// inProject is the stored services of a project.
func inProject(stored []spec.Service, project string) []spec.Service {
	var out []spec.Service
	for _, s := range stored {
		if s.Project == project {
			out = append(out, s)
		}
	}
	return out
}

func serviceNames(svcs []spec.Service) []string {
	out := make([]string, 0, len(svcs))
	for _, s := range svcs {
		out = append(out, s.Name)
	}
	slices.Sort(out)
	return out
}

// differences says which services of a file differ from a project's
// stored definitions, and in which fields (their stored JSON names), or
// that none does.
func differences(file, stored []spec.Service) string {
	fields := func(s spec.Service) map[string]json.RawMessage {
		b, _ := json.Marshal(s)
		var m map[string]json.RawMessage
		_ = json.Unmarshal(b, &m)
		return m
	}
	inFile := map[string]spec.Service{}
	for _, s := range file {
		inFile[s.Name] = s
	}
	inFleet := map[string]spec.Service{}
	for _, s := range stored {
		inFleet[s.Name] = s
	}
	var diffs []string
	for _, name := range keysOfBoth(inFile, inFleet) {
		f, inF := inFile[name]
		s, inS := inFleet[name]
		switch {
		case !inS:
			diffs = append(diffs, name+" (only in the file)")
		case !inF:
			diffs = append(diffs, name+" (only in the fleet)")
		default:
			a, b := fields(f), fields(s)
			var changed []string
			for _, k := range keysOfBoth(a, b) {
				if string(a[k]) != string(b[k]) {
					changed = append(changed, k)
				}
			}
			if len(changed) > 0 {
				diffs = append(diffs, name+" ("+strings.Join(changed, ", ")+")")
			}
		}
	}
	if len(diffs) == 0 {
		return "the file's services are the same as the fleet's"
	}
	return "the file and the fleet differ in " + strings.Join(diffs, ", ")
}

// keysOfBoth is the keys of a and b, sorted, once each.
func keysOfBoth[V any](a, b map[string]V) []string {
	k := append(slices.Collect(maps.Keys(a)), slices.Collect(maps.Keys(b))...)
	slices.Sort(k)
	return slices.Compact(k)
}
