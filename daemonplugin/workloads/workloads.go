// Package workloads is the agent's container work on its own engine: create,
// resize and remove fleet containers, each under the node's ledger lock, so
// that this agent is the one authority over which cores its node has given.
package workloads

import (
	"fmt"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
)

// Kind is an error kind of containerd/errdefs (ErrConflict, …); the agent
// maps kinds to HTTP statuses in one place (agent.status).
type Kind interface{ WithMessage(string) error }

// Refuse is a refusal of kind k, in words for the user.
func Refuse(k Kind, format string, args ...any) error {
	return k.WithMessage(fmt.Sprintf(format, args...))
}

// Manager does the node's container work.
type Manager struct {
	Node   string
	Engine client.APIClient
	// Cores lists the node's cores (from procfs).
	Cores func() (cpuset.Set, error)
	// Migrating says why a container must not be changed now: a migration
	// of it runs or is being finished (empty: none). The one lock per
	// container that migrate, rm and resize share.
	Migrating func(name string) string
	// Checkpoint reports a container's background checkpoints (every is
	// its interval); Standbys the checkpoints this node keeps for other
	// nodes' containers. Nil: none.
	Checkpoint func(name, every string) *api.CheckpointStatus
	Standbys   func() []api.StandbyCopy
	// FilesDir is where the agent keeps its containers' secrets and
	// configs: the engine's DATA_ROOT/fleet/secrets (files.go); empty:
	// none.
	FilesDir string
	// Wanted is the cpuset a container had before the shared pool
	// narrowed it, if it did (pool.Pool.Wanted); nil: none did.
	Wanted func(id string) (string, bool)
	// CPU is the cores a container used lately (metrics.ContainerCPU);
	// nil: not measured.
	CPU func(id string) float64

	// mu is the ledger lock: every change of cores or memory happens under it.
	mu sync.Mutex
	// memTotal is the engine's memory, read once (under mu): a host's
	// memory does not change under a running engine, and reading the
	// engine's info for it on every ledger is costly.
	memTotal int64
}

// notMigrating refuses a change to a container a migration holds.
func (m *Manager) notMigrating(name, what string) error {
	if m.Migrating == nil {
		return nil
	}
	if why := m.Migrating(name); why != "" {
		return Refuse(errdefs.ErrConflict, "%s cannot be %s on %s now: %s; try again when it ends", name, what, m.Node, why)
	}
	return nil
}
