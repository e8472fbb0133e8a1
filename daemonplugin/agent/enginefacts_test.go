package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// countingEngine counts the reads of its info.
type countingEngine struct {
	client.APIClient
	infos atomic.Int32
}

func (e *countingEngine) Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error) {
	n := e.infos.Add(1)
	return client.SystemInfoResult{Info: system.Info{NCPU: int(n)}}, nil
}

func (e *countingEngine) ServerVersion(context.Context, client.ServerVersionOptions) (client.ServerVersionResult, error) {
	return client.ServerVersionResult{APIVersion: "1.41"}, nil
}

func TestEngineFactsAreReadAfreshUnlessAnAgeIsAccepted(t *testing.T) {
	e := &countingEngine{}
	a := &Agent{engine: e}
	var got []int
	h := withMaxAge(func(_ http.ResponseWriter, r *http.Request) {
		f, err := a.engineFacts(r.Context())
		assert.NilError(t, err)
		got = append(got, f.info.NCPU)
	})
	ask := func(cacheControl string) {
		r := httptest.NewRequest(http.MethodGet, "/v1/info", nil)
		if cacheControl != "" {
			r.Header.Set("Cache-Control", cacheControl)
		}
		h(httptest.NewRecorder(), r)
	}
	ask("max-age=60") // nothing read yet: read
	ask("max-age=60") // the last reading
	ask("")           // afresh
	ask("no-cache, max-age=60")
	ask("max-age=0") // no age accepted: afresh
	assert.Check(t, is.DeepEqual(got, []int{1, 1, 2, 2, 3}))
}
