package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/daemonplugin/logstore"
	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
)

// logEngine has one fleet container, web.1, whose log has two lines.
type logEngine struct {
	client.APIClient
	since string
}

func (e *logEngine) ContainerInspect(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	if id != "web.1" && id != "c1" {
		return client.ContainerInspectResult{}, errdefs.ErrNotFound.WithMessage("No such container: " + id)
	}
	return client.ContainerInspectResult{Container: container.InspectResponse{ID: "c1", Name: "/web.1",
		Config: &container.Config{Labels: map[string]string{labels.Service: "web"}}}}, nil
}

func (e *logEngine) ContainerLogs(_ context.Context, id string, o client.ContainerLogsOptions) (client.ContainerLogsResult, error) {
	e.since = o.Since
	var b bytes.Buffer
	for _, f := range []struct {
		stream byte
		text   string
	}{{1, "2026-01-02T15:04:05.1Z out\n"}, {2, "2026-01-02T15:04:05.2Z err\n"}} {
		h := make([]byte, 8)
		h[0] = f.stream
		binary.BigEndian.PutUint32(h[4:], uint32(len(f.text)))
		b.Write(append(h, f.text...))
	}
	return io.NopCloser(&b), nil
}

func logsServer(t *testing.T) (*Agent, *logEngine, *httptest.Server) {
	e := &logEngine{}
	a := &Agent{cfg: Config{Node: "h1"}, engine: e, workloads: &workloads.Manager{Node: "h1", Engine: e},
		logs: &logstore.Store{Dir: t.TempDir(), Node: "h1"}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathContainer+"{name}"+api.LogsSuffix, a.serveLogs)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return a, e, srv
}

func getLines(t *testing.T, url string) (int, []api.LogLine) {
	t.Helper()
	resp, err := http.Get(url)
	assert.NilError(t, err)
	defer resp.Body.Close()
	var out []api.LogLine
	dec := json.NewDecoder(resp.Body)
	for {
		var l api.LogLine
		if dec.Decode(&l) != nil {
			return resp.StatusCode, out
		}
		out = append(out, l)
	}
}

func TestServeLogs(t *testing.T) {
	a, e, srv := logsServer(t)
	since := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	status, lines := getLines(t, srv.URL+api.PathContainer+"web.1"+api.LogsSuffix+"?"+api.LogsQuery{Since: since}.Values().Encode())
	assert.Check(t, is.Equal(status, http.StatusOK))
	assert.Check(t, is.Equal(e.since, "2026-01-02T15:04:05Z"))
	assert.DeepEqual(t, lines, []api.LogLine{
		{Time: since.Add(100 * time.Millisecond), Stream: "stdout", Text: "out", Node: "h1"},
		{Time: since.Add(200 * time.Millisecond), Stream: "stderr", Text: "err", Node: "h1"},
	})

	status, _ = getLines(t, srv.URL+api.PathContainer+"db.1"+api.LogsSuffix)
	assert.Check(t, is.Equal(status, http.StatusNotFound), "no such container: a 404, as other routes")
	status, _ = getLines(t, srv.URL+api.PathContainer+"web.1"+api.LogsSuffix+"?tail=x")
	assert.Check(t, is.Equal(status, http.StatusBadRequest))
	status, _ = getLines(t, srv.URL+api.PathContainer+"..%2Fx"+api.LogsSuffix+"?kept=1")
	assert.Check(t, is.Equal(status, http.StatusBadRequest))

	// Kept parts of a name, whether or not it runs here.
	assert.NilError(t, a.logs.Keep(context.Background(), e, "c1", "db.1"))
	status, lines = getLines(t, srv.URL+api.PathContainer+"db.1"+api.LogsSuffix+"?kept=1")
	assert.Check(t, is.Equal(status, http.StatusOK))
	assert.Check(t, is.Len(lines, 2))
	assert.Check(t, is.Equal(lines[1].Node, "h1"))
	status, lines = getLines(t, srv.URL+api.PathContainer+"web.1"+api.LogsSuffix+"?kept=1")
	assert.Check(t, is.Equal(status, http.StatusOK))
	assert.Check(t, is.Len(lines, 0))
}
