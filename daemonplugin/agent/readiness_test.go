package agent

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
)

func TestReadiness(t *testing.T) {
	exp := api.EngineInfo{Experimental: true}
	ok := api.CRIUInfo{Version: "4.2.1"}

	r := Readiness(exp, ok, 40201)
	assert.Check(t, r.Ready)
	assert.Check(t, is.Len(r.Problems, 0))

	r = Readiness(api.EngineInfo{}, ok, 40201)
	assert.Check(t, !r.Ready)
	assert.Check(t, is.Contains(r.Problems[0], "experimental"))

	r = Readiness(exp, api.CRIUInfo{Version: "3.17"}, 31700)
	assert.Check(t, !r.Ready)
	assert.Check(t, is.Contains(r.Problems[0], "CRIU 3.17 is too old"))

	r = Readiness(exp, api.CRIUInfo{Error: "CRIU is not installed on the host"}, 0)
	assert.Check(t, !r.Ready)
	assert.Check(t, is.Contains(r.Problems[0], "not installed"))
	assert.Check(t, is.Contains(r.Problems[0], "4.2"))

	r = Readiness(api.EngineInfo{}, api.CRIUInfo{Error: "CRIU is not installed on the host"}, 0)
	assert.Check(t, is.Len(r.Problems, 2))

	// Docker 28 restores into a network holder: ready like any other.
	assert.Check(t, Readiness(api.EngineInfo{Version: "28.5.2+dfsg4", Experimental: true}, ok, 40201).Ready)
	assert.Check(t, Readiness(api.EngineInfo{Version: "27.5.1", Experimental: true}, ok, 40201).Ready)
}
