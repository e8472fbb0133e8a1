package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// What Apply does with each service of a project (ServiceChange.Action).
const (
	ChangeCreate    = "create"
	ChangeUpdate    = "update"
	ChangeScale     = "scale"
	ChangeUnchanged = "unchanged"
	ChangeOrphan    = "orphan (kept: --remove-orphans removes it)"
	ChangeRemove    = "remove"
)

// ServiceChange is what applying a file does to one service.
type ServiceChange struct {
	Service string `json:"service"`
	Action  string `json:"action"`
	// Fields are the definition's fields that change (their stored JSON
	// names), for an update; the replica counts, for a scale.
	Fields []string `json:"fields,omitempty"`
}

// ApplyResult is what applying a file to its project did, or would do
// (Plan set: a dry run, or the plan of the services it made).
type ApplyResult struct {
	Project string          `json:"project"`
	Changes []ServiceChange `json:"changes"`
	// Plan is where the new services' replicas go (dry run).
	Plan    *Plan                `json:"plan,omitempty"`
	Created []api.FleetContainer `json:"created,omitempty"`
	Updated []UpdateResult       `json:"updated,omitempty"`
	Removed []string             `json:"removed,omitempty"`
}

// ProjectExists says whether a Compose project has services in the fleet
// (create -f then applies the file to it).
func (d *Deployer) ProjectExists(ctx context.Context, project string) (bool, error) {
	if project == "" {
		return false, nil
	}
	stored, err := swarmstore.ListServices(ctx, d.Fleet.Manager)
	if err != nil {
		return false, err
	}
	return len(inProject(stored, project)) > 0, nil
}

// Apply brings a project that exists to its file, as docker compose up
// applied again: services whose definition changed are updated (rolled,
// health-gated, rolled back on failure), new ones are made, unchanged ones
// left alone, and those dropped from the file removed only with
// removeOrphans. With dryRun it says what it would do and changes nothing.
func (d *Deployer) Apply(ctx context.Context, svcs []spec.Service, opts CreateOptions, removeOrphans, dryRun bool) (*ApplyResult, error) {
	if len(svcs) == 0 {
		return nil, fmt.Errorf("the file has no services")
	}
	project := svcs[0].Project
	stored, err := swarmstore.ListServices(ctx, d.Fleet.Manager)
	if err != nil {
		return nil, err
	}
	mine := map[string]spec.Service{}
	for _, s := range inProject(stored, project) {
		mine[s.Name] = s
	}
	res := &ApplyResult{Project: project, Changes: []ServiceChange{}}
	var fresh []spec.Service
	var updates, scales []serviceMove
	for _, s := range svcs {
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("service %s: %w", s.Name, err)
		}
		old, ok := mine[s.Name]
		if !ok {
			fresh = append(fresh, s)
			res.Changes = append(res.Changes, ServiceChange{Service: s.Name, Action: ChangeCreate})
			continue
		}
		fields := changedFields(old, s)
		switch {
		case len(fields) > 0:
			updates = append(updates, serviceMove{old, s})
			res.Changes = append(res.Changes, ServiceChange{Service: s.Name, Action: ChangeUpdate, Fields: fields})
		case old.Replicas != s.Replicas:
			scales = append(scales, serviceMove{old, s})
			res.Changes = append(res.Changes, ServiceChange{Service: s.Name, Action: ChangeScale, Fields: []string{fmt.Sprintf("replicas %d → %d", old.Replicas, s.Replicas)}})
		default:
			res.Changes = append(res.Changes, ServiceChange{Service: s.Name, Action: ChangeUnchanged})
		}
		if len(fields) > 0 && old.Replicas != s.Replicas {
			scales = append(scales, serviceMove{old, s})
		}
	}
	var orphans []string
	for name := range mine {
		if !slices.ContainsFunc(svcs, func(s spec.Service) bool { return s.Name == name }) {
			orphans = append(orphans, name)
		}
	}
	slices.Sort(orphans)
	for _, name := range orphans {
		action := ChangeOrphan
		if removeOrphans {
			action = ChangeRemove
		}
		res.Changes = append(res.Changes, ServiceChange{Service: name, Action: action})
	}
	opts.intoProject = true
	if dryRun {
		if len(fresh) > 0 {
			if res.Plan, err = d.DryRun(ctx, fresh, opts); err != nil {
				return nil, err
			}
		}
		return res, nil
	}
	return res, d.applyChanges(ctx, res, fresh, updates, scales, orphans, opts, removeOrphans)
}

// applyChanges carries out a project's changes: builds and networks first,
// then updates, new services, scales and removals.
func (d *Deployer) applyChanges(ctx context.Context, res *ApplyResult, fresh []spec.Service, updates, scales []serviceMove, orphans []string, opts CreateOptions, removeOrphans bool) error {
	if _, err := d.build(ctx, opts.Builds); err != nil {
		return err
	}
	opts.Builds = nil
	if err := d.ensureNetworks(ctx, opts.Networks); err != nil {
		return err
	}
	for _, u := range updates {
		to := u.to
		r, err := d.Update(ctx, to.Name, func(s *spec.Service) error {
			rev := s.Revision
			*s = to
			s.Replicas, s.Revision = u.from.Replicas, rev
			return nil
		}, UpdateOptions{Files: opts.Files, Copies: opts.Copies})
		res.Updated = append(res.Updated, r)
		if err != nil {
			return fmt.Errorf("service %s: %w", to.Name, err)
		}
	}
	if len(fresh) > 0 {
		made, err := d.Create(ctx, fresh, opts)
		if err != nil {
			return err
		}
		res.Created = made
	}
	for _, sc := range scales {
		r, err := d.Scale(ctx, []ScaleTarget{{Service: sc.to.Name, Replicas: sc.to.Replicas}})
		if err != nil {
			return err
		}
		for _, x := range r {
			res.Created = append(res.Created, x.Created...)
			res.Removed = append(res.Removed, x.Removed...)
		}
	}
	if removeOrphans && len(orphans) > 0 {
		removed, err := d.Remove(ctx, orphans)
		res.Removed = append(res.Removed, removed...)
		if err != nil {
			return err
		}
	} else {
		for _, o := range orphans {
			d.say("%s is in project %s but not in the file: kept (--remove-orphans removes it)", o, res.Project)
		}
	}
	return nil
}

// serviceMove is a service's stored definition and its file's.
type serviceMove struct{ from, to spec.Service }

// changedFields are the fields (stored JSON names) in which a file's
// definition differs from the stored one, replica count and revision
// aside (scale's and update's own).
func changedFields(stored, file spec.Service) []string {
	fields := func(s spec.Service) map[string]json.RawMessage {
		s.Replicas, s.Revision = 0, 0
		b, _ := json.Marshal(s)
		var m map[string]json.RawMessage
		_ = json.Unmarshal(b, &m)
		return m
	}
	a, b := fields(stored), fields(file)
	var out []string
	for _, k := range keysOfBoth(a, b) {
		if string(a[k]) != string(b[k]) {
			out = append(out, k)
		}
	}
	return out
}
