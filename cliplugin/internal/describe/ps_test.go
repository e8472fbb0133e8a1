package describe

import (
	"errors"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

var psNow = time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)

func psContainer(name, service string, replica int, node, state string) api.FleetContainer {
	return api.FleetContainer{
		Name: name, Service: service, Replica: replica, Node: node, State: state, Image: "fleet-workload:latest",
		Cpuset: "1", Memory: 64 << 20, IP: "10.215.0.9", StartedAt: psNow.Add(-3 * time.Minute).Format(time.RFC3339Nano),
	}
}

// psFleet is three nodes, h3's agent silent: web.1 and db.1 on h1, web.10
// (exited) and web.2 on h2.
func psFleet() (fleet.Inventory, []spec.Service, map[string][]api.Migration) {
	inv := fleet.Inventory{
		{Node: swarmstore.Node{ID: "n1abcdef", Hostname: "h1"}, Ledger: api.Ledger{Containers: []api.FleetContainer{
			psContainer("web.1", "web", 1, "h1", "running"),
			psContainer("db.1", "db", 1, "h1", "running"),
		}}},
		{Node: swarmstore.Node{ID: "n2abcdef", Hostname: "h2"}, Ledger: api.Ledger{Containers: []api.FleetContainer{
			psContainer("web.10", "web", 10, "h2", "exited"),
			psContainer("web.2", "web", 2, "h2", "running"),
		}}},
		{Node: swarmstore.Node{ID: "n3abcdef", Hostname: "h3"}, Err: errors.New("context deadline exceeded")},
	}
	svcs := []spec.Service{{Name: "web", Project: "shop"}, {Name: "db", Project: "shop"}, {Name: "idle"}}
	hist := map[string][]api.Migration{"web.2": {
		{Container: "web.2", From: "h3", To: "h1", Time: psNow.Add(-time.Hour).Format(time.RFC3339)},
		{Container: "web.2", From: "h1", To: "h2", Time: psNow.Add(-4 * time.Minute).Format(time.RFC3339), Downtime: 0.4},
	}}
	return inv, svcs, hist
}

func psNames(t *testing.T, opts PSOptions) []string {
	t.Helper()
	inv, svcs, hist := psFleet()
	v, err := ListPS(inv, svcs, hist, opts, psNow)
	assert.NilError(t, err)
	names := []string{}
	for _, r := range v.Rows {
		names = append(names, r.Name)
	}
	return names
}

func mustFilter(t *testing.T, args ...string) PSFilter {
	t.Helper()
	f, err := ParsePSFilter(args)
	assert.NilError(t, err)
	return f
}

func TestPSSortsByServiceThenReplica(t *testing.T) {
	assert.Check(t, is.DeepEqual(psNames(t, PSOptions{}), []string{"db.1", "web.1", "web.2", "web.10"}))
}

func TestPSFilters(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts PSOptions
		want []string
	}{
		{"node", PSOptions{Filter: mustFilter(t, "node=h2")}, []string{"web.2", "web.10"}},
		{"node by ID prefix", PSOptions{Filter: mustFilter(t, "node=n1a")}, []string{"db.1", "web.1"}},
		{"same key: either", PSOptions{Filter: mustFilter(t, "node=h1", "node=h2")}, []string{"db.1", "web.1", "web.2", "web.10"}},
		{"service", PSOptions{Filter: mustFilter(t, "service=db")}, []string{"db.1"}},
		{"state", PSOptions{Filter: mustFilter(t, "state=exited")}, []string{"web.10"}},
		{"keys: all", PSOptions{Filter: mustFilter(t, "node=h2", "state=running")}, []string{"web.2"}},
		{"project", PSOptions{Filter: mustFilter(t, "project=shop")}, []string{"db.1", "web.1", "web.2", "web.10"}},
		{"no project", PSOptions{Filter: mustFilter(t, "project=other")}, []string{}},
		{"arguments", PSOptions{Services: []string{"db"}}, []string{"db.1"}},
		{"arguments and filter", PSOptions{Services: []string{"web", "db"}, Filter: mustFilter(t, "service=web", "state=running")}, []string{"web.1", "web.2"}},
		{"stored, no replicas", PSOptions{Services: []string{"idle"}}, []string{}},
	} {
		assert.Check(t, is.DeepEqual(psNames(t, tc.opts), tc.want), tc.name)
	}
}

func TestPSRefusals(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"name=web"}, `--filter "name=web": unknown key "name" (valid keys: node, project, service, state)`},
		{[]string{"node"}, `--filter "node": use KEY=VALUE (keys: node, project, service, state)`},
		{[]string{"node="}, `--filter "node=": no value for node`},
		{[]string{"state=up"}, `--filter "state=up": unknown state "up" (states: created, running, paused, restarting, removing, exited, dead)`},
	} {
		_, err := ParsePSFilter(tc.args)
		assert.Check(t, is.Error(err, tc.want), tc.args)
	}
	f, err := ParsePSFilter([]string{" Node = h1 ", "node=h1"})
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(f, PSFilter{"node": {"h1"}}))

	inv, svcs, hist := psFleet()
	_, err = ListPS(inv, svcs, hist, PSOptions{Services: []string{"nope"}}, psNow)
	assert.Check(t, is.Error(err, `no service named "nope" in the fleet`))
	_, err = ListPS(inv, svcs, hist, PSOptions{Filter: mustFilter(t, "node=h9")}, psNow)
	assert.Check(t, is.Error(err, `--filter node=h9: no node named "h9" in the fleet`))
}

func TestPSUnreachable(t *testing.T) {
	inv, svcs, hist := psFleet()
	v, err := ListPS(inv, svcs, hist, PSOptions{}, psNow)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(v.Unreachable, []NodeError{{Node: "h3", Err: "context deadline exceeded"}}))
	// Not the nodes filtered out.
	v, err = ListPS(inv, svcs, hist, PSOptions{Filter: mustFilter(t, "node=h1")}, psNow)
	assert.NilError(t, err)
	assert.Check(t, is.Len(v.Unreachable, 0))
}

func TestPSRows(t *testing.T) {
	inv, svcs, hist := psFleet()
	inv[0].Ledger.Containers[0].Health = "healthy"
	v, err := ListPS(inv, svcs, hist, PSOptions{Services: []string{"web"}}, psNow)
	assert.NilError(t, err)
	web2 := v.Rows[1]
	assert.Check(t, is.Equal(web2.Name, "web.2"))
	assert.Check(t, is.Equal(web2.Project, "shop"))
	assert.Check(t, is.Equal(web2.Uptime, "3 minutes"))
	assert.Check(t, is.Equal(web2.Migrations, 2))
	assert.Check(t, is.Equal(web2.LastMigration.String(), "h1 → h2, 4 minutes ago"))
	assert.Check(t, is.Equal(v.Rows[2].Uptime, ""), "web.10 does not run")
	assert.Check(t, is.Equal(v.Rows[0].LastMigration.String(), "-"))

	var out strings.Builder
	assert.NilError(t, RenderPS(&out, v.Rows))
	assert.Check(t, is.Equal(out.String(), ""+
		"NAME    NODE  STATE              CPUSET  MEMORY  IP          UPTIME     LAST MIGRATION\n"+
		"web.1   h1    running (healthy)  1       64MiB   10.215.0.9  3 minutes  -\n"+
		"web.2   h2    running            1       64MiB   10.215.0.9  3 minutes  h1 → h2, 4 minutes ago\n"+
		"web.10  h2    exited             1       64MiB   10.215.0.9  -          -\n"))
}
