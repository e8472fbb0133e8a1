package versions

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

func fakeInfos() []fleet.NodeInfo {
	info := func(agent string, apiVersion int, engine, criu string) api.Info {
		return api.Info{AgentVersion: agent, APIVersion: apiVersion, Engine: api.EngineInfo{Version: engine}, CRIU: api.CRIUInfo{Version: criu}}
	}
	return []fleet.NodeInfo{
		{Node: swarmstore.Node{Hostname: "h1"}, Info: info("1.0", 2, "28.1.1", "4.2")},
		{Node: swarmstore.Node{Hostname: "h2"}, Info: info("0.9", 0, "26.1.5", "4.2")},
		{Node: swarmstore.Node{Hostname: "h3"}, Info: info("1.1", 3, "20.10.24", "")},
		{Node: swarmstore.Node{Hostname: "h4"}, Err: errors.New("the agent on h4 does not answer at 10.213.0.14:7477")},
	}
}

func TestOf(t *testing.T) {
	r := Of(Client{Version: "1.0", API: 2}, fakeInfos())
	assert.Check(t, is.DeepEqual(r.Nodes, []Node{
		{Node: "h1", AgentVersion: "1.0", API: 2, Engine: "28.1.1", CRIU: "4.2"},
		{Node: "h2", AgentVersion: "0.9", API: 1, Engine: "26.1.5", CRIU: "4.2"},
		{Node: "h3", AgentVersion: "1.1", API: 3, Engine: "20.10.24"},
		{Node: "h4", Error: "the agent on h4 does not answer at 10.213.0.14:7477"},
	}))
	assert.Check(t, is.DeepEqual(This(), Client{Version: This().Version, API: api.APIVersion}))
}

func TestRender(t *testing.T) {
	var out strings.Builder
	assert.NilError(t, Render(&out, Of(Client{Version: "1.0", API: 2}, fakeInfos())))
	assert.Check(t, is.Equal(out.String(), `Client: docker-fleet 1.0 (API 2)

NODE  AGENT  API  ENGINE    CRIU  STATUS
h1    1.0    2    28.1.1    4.2   reachable
h2    0.9    1    26.1.5    4.2   reachable
h3    1.1    3    20.10.24  -     reachable
h4    -      -    -         -     the agent on h4 does not answer at 10.213.0.14:7477

h2: agent 0.9 speaks API 1, this docker-fleet speaks 2: upgrade it with docker fleet init
h3: agent 1.1 speaks API 3, newer than this docker-fleet (2): what this docker-fleet knows works there; upgrade docker-fleet for the rest
`))

	// A fleet of one API version has no skew lines.
	out.Reset()
	assert.NilError(t, Render(&out, Of(Client{Version: "1.0", API: 2}, fakeInfos()[:1])))
	assert.Check(t, is.Equal(out.String(), `Client: docker-fleet 1.0 (API 2)

NODE  AGENT  API  ENGINE  CRIU  STATUS
h1    1.0    2    28.1.1  4.2   reachable
`))
}

func TestJSON(t *testing.T) {
	b, err := json.Marshal(Of(Client{Version: "1.0", API: 2}, fakeInfos()))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(b), `{"client":{"version":"1.0","api":2},"nodes":[`+
		`{"node":"h1","agentVersion":"1.0","api":2,"engine":"28.1.1","criu":"4.2"},`+
		`{"node":"h2","agentVersion":"0.9","api":1,"engine":"26.1.5","criu":"4.2"},`+
		`{"node":"h3","agentVersion":"1.1","api":3,"engine":"20.10.24"},`+
		`{"node":"h4","error":"the agent on h4 does not answer at 10.213.0.14:7477"}]}`))

	b, err = json.Marshal(Of(Client{Version: "1.0", API: 2}, nil))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(b), `{"client":{"version":"1.0","api":2},"nodes":[]}`))
}
