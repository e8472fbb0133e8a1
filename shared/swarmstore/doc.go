// Package swarmstore reads and writes the fleet's state in the swarm's
// raft store: its nodes (and their labels), service definitions, replica
// name claims. The CLI and the agent on the swarm's leader (which
// relocates a dead node's containers) both keep the fleet through it.
package swarmstore

import "errors"

// ErrNoFleet means the engine's swarm holds no fleet (init was not run).
var ErrNoFleet = errors.New("no fleet here: run `docker fleet init` against this engine first")
