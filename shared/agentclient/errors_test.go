package agentclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// A refusal's kind comes from its status, here and only here: callers
// test it with errdefs, never the status or the text.
func TestRefusalsCarryTheirKind(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var status int
		_, _ = fmt.Sscan(r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:], &status)
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, `{"message":"refused with %d"}`, status)
	}))
	defer srv.Close()
	c := &Client{Node: "h1", Addr: strings.TrimPrefix(srv.URL, "https://"), http: srv.Client()}

	for status, is := range map[int]func(error) bool{
		http.StatusConflict:           errdefs.IsConflict,
		http.StatusNotFound:           errdefs.IsNotFound,
		http.StatusBadRequest:         errdefs.IsInvalidArgument,
		http.StatusServiceUnavailable: errdefs.IsUnavailable,
		http.StatusPreconditionFailed: errdefs.IsFailedPrecondition,
		http.StatusForbidden:          errdefs.IsPermissionDenied,
	} {
		err := c.Remove(context.Background(), fmt.Sprint(status))
		assert.Check(t, is(err), "status %d: %v", status, err)
		assert.Check(t, is(fmt.Errorf("wrapped: %w", err)), "status %d, wrapped", status)
		assert.Check(t, err.Error() == fmt.Sprintf("refused with %d", status), "the agent's message, as it said it")
	}

	// An agent that does not answer is unavailable: callers wait for one
	// that is starting.
	srv.Close()
	_, err := c.Info(context.Background())
	assert.Check(t, errdefs.IsUnavailable(err), "%v", err)
	var refusal *Error
	assert.Check(t, !errors.As(err, &refusal))
	assert.Check(t, is.ErrorContains(err, "agent of h1 at "))
}
