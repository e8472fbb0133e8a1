package dial

import (
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// Hop is a step on the way from the CLI to an agent.
type Hop int

const (
	// HopEngine is the manager's engine, reached through the docker context.
	HopEngine Hop = iota
	// HopRelay is the relay container on the manager's engine.
	HopRelay
	// HopAgent is the agent's port, reached from the relay.
	HopAgent
)

// Error says which hop failed and what to do about it. Its kind is
// errdefs.ErrUnavailable for the engine and the agent (try again, or fix the
// network) and errdefs.ErrFailedPrecondition for the relay (run init).
type Error struct {
	Hop     Hop
	Context string // the manager's docker context
	Addr    string // the agent's address (HopAgent)
	Err     error
}

func (e *Error) Error() string {
	switch e.Hop {
	case HopEngine:
		return fmt.Sprintf("the manager's engine (docker context %q) is not reachable: %v", e.Context, e.Err)
	case HopRelay:
		return fmt.Sprintf("the fleet's relay (container %s on the manager, docker context %q) %v: run `docker fleet init` to set it up again",
			relayName, e.Context, e.Err)
	default:
		return fmt.Sprintf("the fleet's relay on the manager (docker context %q) cannot reach %s: %v", e.Context, e.Addr, e.Err)
	}
}

func (e *Error) Unwrap() []error {
	var kind error = errdefs.ErrUnavailable
	if e.Hop == HopRelay {
		kind = errdefs.ErrFailedPrecondition
	}
	return []error{e.Err, kind}
}

// EngineError names the manager's context when err means its engine could not
// be reached at all; other errors pass unchanged.
func EngineError(context string, err error) error {
	if err != nil && client.IsErrConnectionFailed(err) {
		return &Error{Hop: HopEngine, Context: context, Err: err}
	}
	return err
}
