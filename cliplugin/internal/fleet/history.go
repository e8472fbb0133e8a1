package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// Migration history lives in the swarm (swarmstore.RecordMigration): the
// leader's agent records the moves of an automatic rebalance there too.

// History returns a container's migrations, oldest first.
func (f *Fleet) History(ctx context.Context, container string) ([]api.Migration, error) {
	return swarmstore.History(ctx, f.Manager, container)
}

// RecordMigration appends a migration to its container's history.
func (f *Fleet) RecordMigration(ctx context.Context, m api.Migration) error {
	return swarmstore.RecordMigration(ctx, f.Manager, m)
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
	_, err := f.Manager.ConfigRemove(ctx, swarmstore.HistoryConfig(container), client.ConfigRemoveOptions{})
	if err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}
