package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errhttp"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
)

// Each kind the agent answers with has its status, and agentclient's
// mapping back (errhttp.ToNative) gives the same kind.
func TestStatusOfKinds(t *testing.T) {
	tested := map[int]bool{}
	for _, c := range []struct {
		kind   workloads.Kind
		is     func(error) bool
		status int
	}{
		{errdefs.ErrNotFound, errdefs.IsNotFound, http.StatusNotFound},
		{errdefs.ErrInvalidArgument, errdefs.IsInvalidArgument, http.StatusBadRequest},
		{errdefs.ErrConflict, errdefs.IsConflict, http.StatusConflict},
		{errdefs.ErrFailedPrecondition, errdefs.IsFailedPrecondition, http.StatusPreconditionFailed},
		{errdefs.ErrUnauthenticated, errdefs.IsUnauthorized, http.StatusUnauthorized},
		{errdefs.ErrPermissionDenied, errdefs.IsPermissionDenied, http.StatusForbidden},
		{errdefs.ErrResourceExhausted, errdefs.IsResourceExhausted, http.StatusTooManyRequests},
		{errdefs.ErrNotImplemented, errdefs.IsNotImplemented, http.StatusNotImplemented},
		{errdefs.ErrUnavailable, errdefs.IsUnavailable, http.StatusServiceUnavailable},
	} {
		tested[c.status] = true
		err := fmt.Errorf("wrapped: %w", workloads.Refuse(c.kind, "refused"))
		assert.Check(t, is.Equal(status(err), c.status), "%T", c.kind)
		assert.Check(t, c.is(errhttp.ToNative(status(err))), "%T back from %d", c.kind, c.status)
	}
	for _, s := range statuses {
		assert.Check(t, tested[s.status], "status %d is not tested", s.status)
	}
}

// Errors of no kind the caller can act on are the agent's own.
func TestStatusOfTheAgentsOwn(t *testing.T) {
	for _, err := range []error{
		errors.New("engine: boom"),
		errdefs.ErrInternal.WithMessage("internal"),
		errdefs.ErrDataLoss.WithMessage("image loaded as another"),
		context.Canceled,
	} {
		assert.Check(t, is.Equal(status(err), http.StatusInternalServerError), "%v", err)
	}
}

func TestReply(t *testing.T) {
	rec := httptest.NewRecorder()
	reply(rec, nil, workloads.Refuse(errdefs.ErrConflict, "node %s is busy", "h1"))
	assert.Check(t, is.Equal(rec.Code, http.StatusConflict))
	var e api.Error
	assert.NilError(t, json.NewDecoder(rec.Body).Decode(&e))
	assert.Check(t, is.Equal(e.Message, "node h1 is busy"))

	rec = httptest.NewRecorder()
	reply(rec, api.DrainResult{Busy: "x"}, nil)
	assert.Check(t, is.Equal(rec.Code, http.StatusOK))
	assert.Check(t, is.Equal(rec.Header().Get("Content-Type"), "application/json"))
}
