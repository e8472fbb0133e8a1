package migrate

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/errdefs"

	"github.com/docker-fleet/fleet/daemonplugin/workloads"
)

// drainPoll is how often Drain looks whether the node's work has ended.
const drainPoll = 200 * time.Millisecond

// Drain makes way for an upgrade of this agent: for d, no migration starts
// here (as source or destination) and no background checkpoint is taken;
// then it waits up to wait for what is in flight to end, and says what
// still is (empty: nothing, the agent may be stopped). A d of 0 ends the
// drain: the upgrade did not happen. The drain ends on its own after d, so
// that an init that died meanwhile leaves no agent refusing work.
func (m *Migrator) Drain(ctx context.Context, d, wait time.Duration) string {
	m.activeMu.Lock()
	m.drainUntil = time.Time{}
	if d > 0 {
		m.drainUntil = time.Now().Add(d)
	}
	m.activeMu.Unlock()
	if d <= 0 {
		return ""
	}
	deadline := time.Now().Add(wait)
	for {
		busy := m.busy()
		if busy == "" || !time.Now().Before(deadline) {
			return busy
		}
		select {
		case <-ctx.Done():
			return busy
		case <-time.After(drainPoll):
		}
	}
}

// busy names work in flight that a stopped agent would cut short: a
// migration driven here or not finished in the journal, one a source has
// prepared here, or a background checkpoint.
func (m *Migrator) busy() string {
	if u := m.Unfinished(); u != "" {
		return u
	}
	m.activeMu.Lock()
	cp := m.checkpointing
	m.activeMu.Unlock()
	if cp != "" {
		return "a background checkpoint of " + cp
	}
	m.expMu.Lock()
	defer m.expMu.Unlock()
	for id, e := range m.expected {
		if e.limit > 0 {
			return fmt.Sprintf("migration %s of %s from %s (prepared)", id, e.Container, e.From)
		}
	}
	return ""
}

// Accepting refuses new work while the node makes way for an upgrade.
func (m *Migrator) Accepting() error {
	m.activeMu.Lock()
	defer m.activeMu.Unlock()
	return m.drainedLocked()
}

// drainedLocked is Accepting; callers hold activeMu. The refusal is
// unavailable: the CLI waits and tries again, against the new agent.
func (m *Migrator) drainedLocked() error {
	if time.Now().Before(m.drainUntil) {
		return workloads.Refuse(errdefs.ErrUnavailable, "the agent on %s is making way for its upgrade: try again in a moment", m.Node)
	}
	return nil
}

// startCheckpoint marks a background checkpoint of name as taken, unless
// the node is draining; the returned function ends it.
func (m *Migrator) startCheckpoint(name string) (func(), bool) {
	m.activeMu.Lock()
	defer m.activeMu.Unlock()
	if m.drainedLocked() != nil {
		return nil, false
	}
	m.checkpointing = name
	return func() {
		m.activeMu.Lock()
		defer m.activeMu.Unlock()
		m.checkpointing = ""
	}, true
}
