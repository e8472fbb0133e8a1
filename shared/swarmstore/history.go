package swarmstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
)

// Migration history lives in the swarm too: one config per container that
// has moved, holding its migrations oldest first: in its data when it was
// made, then in its labels.Content, which a new migration updates in place.

// HistoryConfig names the config of a container's migration history.
func HistoryConfig(name string) string { return labels.HistoryConfigPrefix + name }

// History returns a container's migrations, oldest first.
func History(ctx context.Context, c client.APIClient, container string) ([]api.Migration, error) {
	res, err := c.ConfigInspect(ctx, HistoryConfig(container), client.ConfigInspectOptions{})
	if errdefs.IsNotFound(err) {
		return []api.Migration{}, nil
	}
	if err != nil {
		return nil, err
	}
	var out []api.Migration
	return out, json.Unmarshal(Content(res.Config), &out)
}

// maxHistory bounds the migrations kept per container (the newest).
const maxHistory = 100

// RecordMigration appends a migration to its container's history.
func RecordMigration(ctx context.Context, c client.APIClient, m api.Migration) error {
	for attempt := 0; attempt < 3; attempt++ {
		past, err := History(ctx, c, m.Container)
		if err != nil {
			return err
		}
		if len(past) > 0 {
			// Appended to the version the update replaces, read anew at
			// each of its attempts.
			var ferr error
			err := UpdateLabels(ctx, c, HistoryConfig(m.Container), func(l map[string]string) {
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
		_, err = c.ConfigCreate(ctx, client.ConfigCreateOptions{Spec: swarm.ConfigSpec{
			Annotations: swarm.Annotations{Name: HistoryConfig(m.Container), Labels: map[string]string{labels.History: m.Container}},
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
