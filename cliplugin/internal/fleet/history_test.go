package fleet

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// historySwarm holds history configs; its listing leaves the data out, as
// some engines do, and it counts the inspects.
type historySwarm struct {
	client.APIClient
	configs  []swarm.Config
	inspects int
}

func (s *historySwarm) ConfigList(_ context.Context, o client.ConfigListOptions) (client.ConfigListResult, error) {
	var out []swarm.Config
	for _, c := range s.configs {
		if _, ok := c.Spec.Labels[labels.History]; ok {
			c.Spec.Data = nil
			out = append(out, c)
		}
	}
	return client.ConfigListResult{Items: out}, nil
}

func (s *historySwarm) ConfigInspect(_ context.Context, id string, _ client.ConfigInspectOptions) (client.ConfigInspectResult, error) {
	s.inspects++
	for _, c := range s.configs {
		if c.ID == id || c.Spec.Name == id {
			return client.ConfigInspectResult{Config: c}, nil
		}
	}
	return client.ConfigInspectResult{}, errdefs.ErrNotFound
}

func historyOf(t *testing.T, id, container string, data, content []api.Migration) swarm.Config {
	t.Helper()
	cfg := swarm.Config{ID: id, Spec: swarm.ConfigSpec{
		Annotations: swarm.Annotations{Name: swarmstore.HistoryConfig(container), Labels: map[string]string{labels.History: container}},
	}}
	var err error
	cfg.Spec.Data, err = json.Marshal(data)
	assert.NilError(t, err)
	if content != nil {
		b, err := json.Marshal(content)
		assert.NilError(t, err)
		cfg.Spec.Labels[labels.Content] = string(b)
	}
	return cfg
}

func TestHistoriesReadsTheListing(t *testing.T) {
	first := api.Migration{Container: "web.1", From: "h1", To: "h2", Time: "2026-11-03T10:00:00Z"}
	second := api.Migration{Container: "web.1", From: "h2", To: "h3", Time: "2026-11-03T10:05:00Z"}
	once := api.Migration{Container: "db.1", From: "h2", To: "h1", Time: "2026-11-03T10:02:00Z"}
	s := &historySwarm{configs: []swarm.Config{
		historyOf(t, "a", "web.1", []api.Migration{first}, []api.Migration{first, second}),
		historyOf(t, "b", "db.1", []api.Migration{once}, nil),
	}}

	f := &Fleet{Manager: s}
	got, err := f.Histories(context.Background())
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(got, map[string][]api.Migration{"web.1": {first, second}, "db.1": {once}}))
	// Only db.1, whose one migration is in the data the listing left out.
	assert.Check(t, is.Equal(s.inspects, 1))

	all, err := f.AllMigrations(context.Background())
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(all, []api.Migration{first, once, second}))
}
