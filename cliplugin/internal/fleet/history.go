package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// Migration history lives in the swarm too: one config per container that
// has moved, holding its migrations oldest first: in its data when it was
// made, then in its labels.Content, which a new migration updates in place.

func historyConfig(name string) string { return labels.HistoryConfigPrefix + name }

// History returns a container's migrations, oldest first.
func (f *Fleet) History(ctx context.Context, container string) ([]api.Migration, error) {
	res, err := f.Manager.ConfigInspect(ctx, historyConfig(container), client.ConfigInspectOptions{})
	if errdefs.IsNotFound(err) {
		return []api.Migration{}, nil
	}
	if err != nil {
		return nil, err
	}
	var out []api.Migration
	return out, json.Unmarshal(swarmstore.Content(res.Config), &out)
}

// maxHistory bounds the migrations kept per container (the newest).
const maxHistory = 100

// RecordMigration appends a migration to its container's history.
func (f *Fleet) RecordMigration(ctx context.Context, m api.Migration) error {
	for attempt := 0; attempt < 3; attempt++ {
		past, err := f.History(ctx, m.Container)
		if err != nil {
			return err
		}
		if len(past) > 0 {
			// Appended to the version the update replaces, read anew at
			// each of its attempts.
			var ferr error
			err := swarmstore.UpdateLabels(ctx, f.Manager, historyConfig(m.Container), func(l map[string]string) {
				var now []api.Migration
				if v, ok := l[labels.Content]; ok {
					ferr = json.Unmarshal([]byte(v), &now)
				} else {
					now = past
				}
				if data, err := appendMigration(now, m); err == nil {
					l[labels.Content] = string(data)
				}
			})
			if ferr != nil {
				return ferr
			}
			return err
		}
		data, err := appendMigration(nil, m)
		if err != nil {
			return err
		}
		_, err = f.Manager.ConfigCreate(ctx, client.ConfigCreateOptions{Spec: swarm.ConfigSpec{
			Annotations: swarm.Annotations{Name: historyConfig(m.Container), Labels: map[string]string{labels.History: m.Container}},
			Data:        data,
		}})
		if !errdefs.IsConflict(err) {
			return err
		}
		// Another writer made it meanwhile: append to theirs.
	}
	return fmt.Errorf("recording the migration of %s: the history kept changing", m.Container)
}

// appendMigration is past with m added (once: a followed migration may be
// recorded twice), the newest maxHistory kept.
func appendMigration(past []api.Migration, m api.Migration) ([]byte, error) {
	all := past
	if !slices.ContainsFunc(past, func(p api.Migration) bool { return p.Time == m.Time && p.From == m.From && p.To == m.To }) {
		all = append(slices.Clone(past), m)
	}
	return json.Marshal(all[max(0, len(all)-maxHistory):])
}

// AllMigrations returns every recorded migration, oldest first.
func (f *Fleet) AllMigrations(ctx context.Context) ([]api.Migration, error) {
	byContainer, err := f.Histories(ctx)
	if err != nil {
		return nil, err
	}
	var out []api.Migration
	for _, h := range byContainer {
		out = append(out, h...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time < out[j].Time })
	return out, nil
}

// Histories returns every container's migrations (oldest first), by
// container name, from one listing of the history configs: a history that
// has moved more than once is whole in its labels, which the listing
// carries; only one whose data the listing left out (some engines do) is
// inspected.
func (f *Fleet) Histories(ctx context.Context) (map[string][]api.Migration, error) {
	res, err := f.Manager.ConfigList(ctx, client.ConfigListOptions{Filters: make(client.Filters).Add("label", labels.History)})
	if err != nil {
		return nil, err
	}
	out := make(map[string][]api.Migration, len(res.Items))
	for _, cfg := range res.Items {
		name := cfg.Spec.Labels[labels.History]
		content := swarmstore.Content(cfg)
		if len(content) == 0 {
			full, err := f.Manager.ConfigInspect(ctx, cfg.ID, client.ConfigInspectOptions{})
			if errdefs.IsNotFound(err) {
				continue // forgotten since the listing
			}
			if err != nil {
				return nil, err
			}
			content = swarmstore.Content(full.Config)
		}
		var h []api.Migration
		if err := json.Unmarshal(content, &h); err != nil {
			return nil, fmt.Errorf("swarm config %s: %w", cfg.Spec.Name, err)
		}
		out[name] = append(out[name], h...)
	}
	return out, nil
}

// ForgetHistory removes a container's history, when the container goes.
func (f *Fleet) ForgetHistory(ctx context.Context, container string) error {
	_, err := f.Manager.ConfigRemove(ctx, historyConfig(container), client.ConfigRemoveOptions{})
	if err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}
