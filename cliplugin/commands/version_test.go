package commands

import (
	"io"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/cliplugin/internal/versions"
)

func TestVersionCommand(t *testing.T) {
	var found bool
	for _, c := range NewRootCommand(nil).Commands() {
		found = found || c.Name() == "version"
	}
	assert.Check(t, found, "version is a subcommand")

	cmd := newVersionCommand(nil)
	assert.Check(t, is.Contains(cmd.Example, "docker fleet version --format json"))
	assert.Check(t, cmd.Flags().Lookup("format") != nil)
}

func TestVersionFormats(t *testing.T) {
	r := &versions.Report{
		Client: versions.Client{Version: "1.0", API: 2},
		Nodes:  []versions.Node{{Node: "h1", AgentVersion: "0.9", API: 1, Engine: "28.1.1", CRIU: "4.2"}},
	}
	table := func(w io.Writer) error { return versions.Render(w, r) }

	var out strings.Builder
	assert.NilError(t, writeFormatted(&out, "json", r, table))
	assert.Check(t, is.Equal(out.String(), `{
  "client": {
    "version": "1.0",
    "api": 2
  },
  "nodes": [
    {
      "node": "h1",
      "agentVersion": "0.9",
      "api": 1,
      "engine": "28.1.1",
      "criu": "4.2"
    }
  ]
}
`))

	out.Reset()
	assert.NilError(t, writeFormatted(&out, `{{.Client.API}}{{range .Nodes}} {{.Node}}={{.API}}{{end}}`, r, table))
	assert.Check(t, is.Equal(out.String(), "2 h1=1\n"))

	out.Reset()
	assert.NilError(t, writeFormatted(&out, "", r, table))
	assert.Check(t, is.Contains(out.String(), "h1: agent 0.9 speaks API 1, this docker-fleet speaks 2: upgrade it with docker fleet init\n"))
}
