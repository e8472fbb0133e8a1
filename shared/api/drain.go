package api

import "time"

// PathDrain: before init replaces a node's agent, it has the agent take no
// new work and waits until what it has in flight is done (DrainRequest,
// DrainResult). The agent refuses new migrations meanwhile as unavailable
// (try again), so that a CLI waits for the new agent instead of failing.
const PathDrain = "/v1/node/drain"

// MaxDrain bounds how long an agent stays drained: an init that dies
// between the drain and the upgrade leaves an agent that takes work again
// on its own.
const MaxDrain = 5 * time.Minute

// DrainRequest drains the agent for Seconds (0: take work again at once,
// the upgrade did not happen) and waits up to Wait seconds for its work in
// flight to end.
type DrainRequest struct {
	Seconds int `json:"seconds"`
	Wait    int `json:"wait"`
}

// DrainResult says what the agent still has in flight after the wait:
// nothing (Busy empty), or what init must not cut short.
type DrainResult struct {
	Busy string `json:"busy,omitempty"`
}
