package bootstrap

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/errdefs"

	"github.com/docker-fleet/fleet/shared/agentclient"
	"github.com/docker-fleet/fleet/shared/api"
)

// How a running agent makes way for its upgrade: it takes no new work for
// drainFor (its own bound, should init die meanwhile) and init waits up to
// drainWait for the migrations it has in flight to end.
const (
	drainFor  = 3 * time.Minute
	drainWait = 90 * time.Second
)

// handover drains a node's running agent before agentinstall stops it
// (agentinstall.Handover), and remembers when the node was left without
// an agent, so that init can say for how long.
type handover struct {
	node    string
	agent   *agentclient.Client
	say     func(format string, args ...any)
	stopped time.Time
}

func (h *handover) Drain(ctx context.Context) error {
	res, err := h.agent.Drain(ctx, api.DrainRequest{Seconds: int(drainFor.Seconds()), Wait: int(drainWait.Seconds())})
	switch {
	case errdefs.IsUnavailable(err):
		// Not running: it has nothing in flight to end; its journal's
		// migrations the new agent finishes.
	case errdefs.IsNotFound(err):
		h.say("%s: its agent predates handovers (API 3): migrations it has in flight are finished from its journal by the new one", h.node)
	case err != nil:
		h.say("warning: %s: draining its agent: %v; replacing it all the same (its journal keeps what it has in flight)", h.node, err)
	case res.Busy != "":
		h.Resume(ctx)
		return fmt.Errorf("%s: %s did not end within %s, so its agent was left as it was: run init again once it has: %w",
			h.node, res.Busy, drainWait, errdefs.ErrConflict)
	}
	h.stopped = time.Now()
	return nil
}

func (h *handover) Resume(ctx context.Context) {
	if _, err := h.agent.Drain(ctx, api.DrainRequest{}); err != nil && !errdefs.IsUnavailable(err) && !errdefs.IsNotFound(err) {
		h.say("warning: %s: its agent refuses new migrations for up to %s more: %v", h.node, drainFor, err)
	}
}

// gap is how long the node had no agent, once the new one answered (zero
// when the old one was never stopped).
func (h *handover) gap() time.Duration {
	if h == nil || h.stopped.IsZero() {
		return 0
	}
	return time.Since(h.stopped)
}
