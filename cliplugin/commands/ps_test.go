package commands

import (
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/cliplugin/internal/describe"
)

var psRows = []describe.PSRow{
	{Name: "web.1", Service: "web", Replica: 1, Node: "h1", State: "running", Uptime: "3 minutes"},
	{Name: "web.2", Service: "web", Replica: 2, Node: "h2", State: "running", Migrations: 1,
		LastMigration: describe.Move{From: "h1", To: "h2", Time: "2026-11-03T09:56:00Z", Ago: "4 minutes ago"}},
}

func psOutput(t *testing.T, opts psOptions) string {
	t.Helper()
	write, err := psWriter(opts)
	assert.NilError(t, err)
	var out strings.Builder
	assert.NilError(t, write(&out, psRows))
	return out.String()
}

func TestPsFormats(t *testing.T) {
	assert.Check(t, is.Equal(psOutput(t, psOptions{quiet: true}), "web.1\nweb.2\n"))
	assert.Check(t, is.Equal(psOutput(t, psOptions{quiet: true, format: "json"}), "web.1\nweb.2\n"), "-q wins")

	// One object a line, as docker's --format json; no lastMigration for
	// a container that never moved.
	assert.Check(t, is.Equal(psOutput(t, psOptions{format: "json"}), ""+
		`{"name":"web.1","service":"web","replica":1,"node":"h1","image":"","state":"running","uptime":"3 minutes","migrations":0}`+"\n"+
		`{"name":"web.2","service":"web","replica":2,"node":"h2","image":"","state":"running","migrations":1,"lastMigration":{"from":"h1","to":"h2","time":"2026-11-03T09:56:00Z","ago":"4 minutes ago","downtimeSeconds":0}}`+"\n"))

	assert.Check(t, is.Equal(psOutput(t, psOptions{format: "{{.Name}} {{.Node}} {{.LastMigration}}"}),
		"web.1 h1 -\nweb.2 h2 h1 → h2, 4 minutes ago\n"))

	table := psOutput(t, psOptions{format: "table"})
	assert.Check(t, is.Equal(table, psOutput(t, psOptions{})))
	assert.Check(t, strings.HasPrefix(table, "NAME "), table)

	_, err := psWriter(psOptions{format: "yaml"})
	assert.Check(t, is.ErrorContains(err, `--format "yaml"`))
}

func TestPsRefusesUnknownFilterBeforeAskingTheFleet(t *testing.T) {
	cmd := newPsCommand(nil)
	cmd.SetArgs([]string{"--filter", "colour=red"})
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.Execute()
	assert.Check(t, is.Error(err, `--filter "colour=red": unknown key "colour" (valid keys: node, project, service, state)`))
}
