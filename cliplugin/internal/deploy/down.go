package deploy

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// DownResult is what down removed.
type DownResult struct {
	Project string `json:"project"`
	// Removed are the containers and services removed, as rm lists them.
	Removed []string       `json:"removed"`
	Volumes []VolumeResult `json:"volumes,omitempty"`
}

// VolumeResult is a named volume that the project's containers used on a
// node, and whether down -v removed it.
type VolumeResult struct {
	Node    string `json:"node"`
	Volume  string `json:"volume"`
	Removed bool   `json:"removed"`
	// Why it was left.
	Why string `json:"why,omitempty"`
}

// Down removes a Compose project's services (dependents first, as rm
// removes a service) and, with volumes, the volumes their containers used:
// those on the manager's own engine, which the CLI reaches; elsewhere
// they are left and listed, since the agents have no way to remove a
// volume yet. External volumes are always left.
func (d *Deployer) Down(ctx context.Context, project string, volumes bool) (*DownResult, error) {
	stored, err := swarmstore.ListServices(ctx, d.Fleet.Manager)
	if err != nil {
		return nil, err
	}
	svcs := inProject(stored, project)
	if len(svcs) == 0 {
		return nil, errdefs.ErrNotFound.WithMessage(fmt.Sprintf("no project %q in the fleet (%s)", project, projectsOf(stored)))
	}
	res := &DownResult{Project: project}
	var used []VolumeResult
	if volumes {
		// Read before the containers go, while they still say what they mount.
		if used, err = d.usedVolumes(ctx, svcs); err != nil {
			return nil, err
		}
	}
	res.Removed, err = d.Remove(ctx, removalOrder(svcs))
	if err != nil {
		return res, err
	}
	for _, v := range used {
		if v.Why == "" {
			var gone bool
			if v, gone = d.removeVolume(ctx, v); gone {
				continue // removed with its container, or by someone else
			}
		}
		res.Volumes = append(res.Volumes, v)
	}
	return res, nil
}

// projectsOf names the projects there are, for a refusal.
func projectsOf(stored []spec.Service) string {
	var names []string
	for _, s := range stored {
		if s.Project != "" {
			names = append(names, s.Project)
		}
	}
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	if len(names) == 0 {
		return "it has none"
	}
	return "projects: " + strings.Join(names, ", ")
}

// removalOrder is the services to remove, the ones that depend on others
// first (spec.Order backwards).
func removalOrder(svcs []spec.Service) []string {
	waves, err := spec.Order(svcs)
	if err != nil {
		return serviceNames(svcs) // a stored cycle cannot be made; any order removes all
	}
	var out []string
	for i := len(waves) - 1; i >= 0; i-- {
		out = append(out, waves[i]...)
	}
	return out
}

// leftWhy says why a volume elsewhere than the manager is left.
const leftWhy = "the agents cannot remove volumes yet: remove it there with docker volume rm"

// usedVolumes lists, node by node, the volumes the project's containers
// mount: on the manager, every volume mount the engine reports (named or
// anonymous, under the name the engine gave it there); elsewhere, the
// named volumes of the definitions, which are left (Why says so).
func (d *Deployer) usedVolumes(ctx context.Context, svcs []spec.Service) ([]VolumeResult, error) {
	inv, err := d.inventory(ctx)
	if err != nil {
		return nil, err
	}
	manager, err := d.managerNode(ctx, inv)
	if err != nil {
		return nil, err
	}
	var out []VolumeResult
	seen := map[VolumeResult]bool{}
	add := func(v VolumeResult) {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	for _, s := range svcs {
		external := map[string]bool{}
		for _, v := range s.Volumes {
			external[v.Source] = v.External
		}
		for _, c := range inv.Containers(s.Name) {
			if c.Node != manager.Hostname {
				for _, v := range namedVolumes(s) {
					add(VolumeResult{Node: c.Node, Volume: v, Why: leftWhy})
				}
				continue
			}
			res, err := d.Fleet.Manager.ContainerInspect(ctx, c.Name, client.ContainerInspectOptions{})
			if err != nil {
				return nil, fmt.Errorf("%s on %s: %w", c.Name, c.Node, err)
			}
			for _, m := range res.Container.Mounts {
				if m.Type == mount.TypeVolume && !external[m.Name] {
					add(VolumeResult{Node: c.Node, Volume: m.Name})
				}
			}
		}
	}
	return out, nil
}

// namedVolumes is the named volumes of a definition that down -v removes:
// not host paths, not external.
func namedVolumes(s spec.Service) []string {
	var out []string
	for _, v := range s.Volumes {
		if !path.IsAbs(v.Source) && !v.External {
			out = append(out, v.Source)
		}
	}
	return out
}

// removeVolume removes a volume on the manager's engine; one another
// container still uses is left, and says so. gone: it was not there.
func (d *Deployer) removeVolume(ctx context.Context, v VolumeResult) (_ VolumeResult, gone bool) {
	_, err := d.Fleet.Manager.VolumeRemove(ctx, v.Volume, client.VolumeRemoveOptions{})
	switch {
	case err == nil:
		v.Removed = true
	case errdefs.IsNotFound(err):
		return v, true
	case errdefs.IsConflict(err):
		v.Why = "another container still uses it"
	default:
		v.Why = err.Error()
	}
	return v, false
}
