package agent

import (
	"net/http"

	"github.com/containerd/errdefs"
)

// statuses are the HTTP statuses of the error kinds (containerd/errdefs)
// the agent answers with, first match first. agentclient maps each status
// back to its kind (errhttp.ToNative), so a kind crosses the wire whole.
var statuses = []struct {
	is     func(error) bool
	status int
}{
	{errdefs.IsNotFound, http.StatusNotFound},
	{errdefs.IsInvalidArgument, http.StatusBadRequest},
	{errdefs.IsConflict, http.StatusConflict},
	{errdefs.IsFailedPrecondition, http.StatusPreconditionFailed},
	{errdefs.IsUnauthorized, http.StatusUnauthorized},
	{errdefs.IsPermissionDenied, http.StatusForbidden},
	{errdefs.IsResourceExhausted, http.StatusTooManyRequests},
	{errdefs.IsNotImplemented, http.StatusNotImplemented},
	{errdefs.IsUnavailable, http.StatusServiceUnavailable},
}

// status is the HTTP status of err: the one place where the agent maps
// errors to statuses. An error of no kind above (the engine's failures,
// data loss, …) is the agent's own: 500.
func status(err error) int {
	for _, s := range statuses {
		if s.is(err) {
			return s.status
		}
	}
	return http.StatusInternalServerError
}
