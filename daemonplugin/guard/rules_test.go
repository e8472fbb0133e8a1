package guard

import (
	"testing"

	"github.com/docker/go-plugins-helpers/authorization"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/daemonplugin/pool"
	"github.com/docker-fleet/fleet/shared/cpuset"
)

func rules() *Rules {
	ctrs := []pool.Container{
		{ID: "aaaa1111", Name: "web.1", Fleet: true, Exclusive: cpuset.Of(1)},
		{ID: "bbbb2222", Name: "cache.1", Fleet: true},
		{ID: "cccc3333", Name: "plain"},
	}
	return &Rules{Token: "secret", Self: "fleet-agent:latest", SelfID: func() string { return "0123456789abcdef" },
		Containers: func() []pool.Container { return ctrs },
		Busy: func(name string) string {
			if name == "cache.1" {
				return "migration m1 of it is running"
			}
			return ""
		}}
}

func req(method, uri, body string) authorization.Request {
	r := authorization.Request{RequestMethod: method, RequestURI: uri}
	if body != "" {
		r.RequestBody = []byte(body)
	}
	return r
}

func TestRefusals(t *testing.T) {
	r := rules()
	for _, tc := range []struct {
		req  authorization.Request
		want string // "" allowed
	}{
		{req("POST", "/v1.41/containers/create?name=x", `{"Image":"i","HostConfig":{"CpusetCpus":"0-1"}}`), "core 1 of this node is held exclusively by fleet container web.1"},
		{req("POST", "/v1.41/containers/create", `{"Image":"i","HostConfig":{"CpusetCpus":"0"}}`), ""},
		{req("POST", "/v1.41/containers/create", `{"Image":"i","HostConfig":{}}`), ""},
		{req("POST", "/v1.41/containers/create", ``), "cannot read this create's body"},
		{req("POST", "/v1.41/containers/plain/update", `{"CpusetCpus":"1"}`), "held exclusively by fleet container web.1"},
		{req("POST", "/v1.41/containers/plain/update", `{"Memory":1000000}`), ""},
		{req("POST", "/v1.41/containers/web.1/update", `{"Memory":100000000}`), "web.1 is a fleet container: change its cores or memory with `docker fleet resize web.1`"},
		{req("POST", "/containers/aaaa/update", `{"CpusetCpus":"1"}`), "web.1 is a fleet container"},
		{req("POST", "/v1.41/containers/web.1/update", `{"RestartPolicy":{"Name":"always"}}`), ""},
		{req("POST", "/v1.41/containers/cache.1/stop?t=10", ""), "cache.1 is held by docker fleet (migration m1 of it is running): stop it when that ends"},
		{req("DELETE", "/v1.41/containers/cache.1?force=1", ""), "rm it when that ends"},
		{req("POST", "/v1.41/containers/bbbb2222/checkpoints", `{}`), "checkpoint it when"},
		{req("POST", "/v1.41/containers/web.1/stop", ""), ""},
		{req("DELETE", "/v1.41/containers/plain", ""), ""},
		{req("DELETE", "/v1.41/plugins/fleet-agent:latest?force=1", ""), "the fleet guard is on"},
		{req("DELETE", "/v1.41/plugins/0123456789ab?force=true", ""), "the fleet guard is on"},
		{req("DELETE", "/v1.41/plugins/other?force=1", ""), ""},
		{req("DELETE", "/v1.41/plugins/docker.io/library/fleet-agent:latest?force=1", ""), "the fleet guard is on"},
		{req("DELETE", "/v1.41/plugins/library/fleet-agent?force=1", ""), "the fleet guard is on"},
		{req("DELETE", "/v1.41/plugins/0123?force=1", ""), "the fleet guard is on"},
		{req("DELETE", "/v1.41/plugins/fleet-agent-next:latest?force=1", ""), ""},
		{req("GET", "/v1.41/containers/json", ""), ""},
		{req("GET", "/_ping", ""), ""},
	} {
		res := r.AuthZReq(tc.req)
		if tc.want == "" {
			assert.Check(t, res.Allow, "%s %s: %s", tc.req.RequestMethod, tc.req.RequestURI, res.Msg)
			continue
		}
		assert.Check(t, !res.Allow, "%s %s", tc.req.RequestMethod, tc.req.RequestURI)
		assert.Check(t, is.Contains(res.Msg, tc.want), "%s %s", tc.req.RequestMethod, tc.req.RequestURI)
	}
}

func TestAgentPassesItsOwnRequests(t *testing.T) {
	r := rules()
	q := req("DELETE", "/v1.41/containers/cache.1?force=1", "")
	q.RequestHeaders = map[string]string{HeaderAgent: "secret"}
	assert.Check(t, r.AuthZReq(q).Allow)
	q.RequestHeaders = map[string]string{HeaderAgent: "guess"}
	assert.Check(t, !r.AuthZReq(q).Allow)
}

func TestUndecidedPasses(t *testing.T) {
	r := rules()
	block := make(chan struct{})
	defer close(block)
	r.Busy = func(string) string { <-block; return "never" }
	assert.Check(t, r.AuthZReq(req("POST", "/v1.41/containers/cache.1/stop", "")).Allow)
}

func TestSelfDisableTakesItOffTheFile(t *testing.T) {
	r := rules()
	var calls []string
	r.SelfDisabling = func() { calls = append(calls, "off") }
	r.SelfDisableFailed = func() { calls = append(calls, "back") }
	assert.Check(t, r.AuthZReq(req("POST", "/v1.41/plugins/fleet-agent:latest/disable", "")).Allow)
	q := req("POST", "/v1.41/plugins/fleet-agent/disable", "")
	q.ResponseStatusCode = 500
	assert.Check(t, r.AuthZRes(q).Allow)
	q.ResponseStatusCode = 200
	r.AuthZRes(q)
	assert.Check(t, is.DeepEqual(calls, []string{"off", "back"}))
}

func TestProbeSeen(t *testing.T) {
	r := rules()
	q := req("GET", `/v1.41/containers/json?all=1&filters=%7B%22name%22%3A%7B%22fleet-guard-probe-ABC234%22%3Atrue%7D%7D`, "")
	q.RequestHeaders = map[string]string{HeaderAgent: "secret"}
	assert.Check(t, r.AuthZReq(q).Allow)
	assert.Check(t, r.Seen("ABC234"))
	assert.Check(t, !r.Seen("ABC234"), "forgotten once seen")
}
