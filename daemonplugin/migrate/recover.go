package migrate

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/daemonplugin/journal"
	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
)

// Recovery: what the journal holds that no live request drives is brought
// to its end by the resolver, on the agent's start and then every
// resolveEvery. A source finishes what it decided (or decides abort when it
// had not), a destination asks the source once its copy waited
// decisionWait for the decision.

var (
	resolveEvery = 3 * time.Second
	decisionWait = 5 * time.Second
)

// Start cleans what a crash of this agent may have left on the host, then
// resolves the journal's migrations until ctx ends.
func (m *Migrator) Start(ctx context.Context) {
	m.cleanHost(ctx)
	for {
		m.resolveAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(resolveEvery):
		}
	}
}

// cleanHost removes a dead agent's leftovers: a CRIU configuration line of
// one restore or dump (images-dir, external, tcp-close) and this node's migration
// directories in tmpfs that no journaled migration owns.
func (m *Migrator) cleanHost(ctx context.Context) {
	// Taking the lock waits for any live agent of the host to finish with
	// its lines; whatever is left then belongs to a dead one.
	err := withCRIULock(m.HostRoot, nil, func() error {
		return editCRIUConfig(m.HostRoot, nil, func(line string) bool {
			return strings.HasPrefix(line, "images-dir ") || strings.HasPrefix(line, "external ") || line == "tcp-close"
		})
	})
	if err != nil {
		log.Printf("cleaning the CRIU configuration: %v", err)
	}
	entries, _ := m.Journal.List()
	owned := map[string]bool{}
	for _, e := range entries {
		owned[e.ID] = true
	}
	prefix := "fleet-" + safeName(m.Node) + "-"
	dirs, _ := os.ReadDir(m.host(shmDir))
	for _, d := range dirs {
		rest, ok := strings.CutPrefix(d.Name(), prefix)
		if !ok {
			// Named before the node was in the name: whoever made it is
			// long done with it.
			if info, err := d.Info(); err == nil && strings.HasPrefix(d.Name(), "fleet-migration-") && time.Since(info.ModTime()) > time.Hour {
				_ = os.RemoveAll(m.host(filepath.Join(shmDir, d.Name())))
			}
			continue
		}
		id, _, _ := strings.Cut(rest, "-")
		if !owned[id] {
			_ = os.RemoveAll(m.host(filepath.Join(shmDir, d.Name())))
		}
	}
}

// resolveAll takes every journaled migration no live request drives one
// step towards its end.
func (m *Migrator) resolveAll(ctx context.Context) {
	entries, errs := m.Journal.List()
	for _, err := range errs {
		log.Printf("migration journal: %v", err)
	}
	for _, e := range entries {
		if err := m.resolve(ctx, e.ID); err != nil {
			log.Printf("migration %s of %s (%s, %s): %v", e.ID, e.Container, e.Role, e.State, err)
		}
	}
}

// resolve takes one migration a step towards its end, unless a live
// request drives it. No lock is held while a peer is asked: the two sides'
// resolvers ask each other.
func (m *Migrator) resolve(ctx context.Context, id string) error {
	if m.isActive(id) {
		return nil
	}
	e, err := m.Journal.Get(id)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	switch e.Role {
	case journal.Source:
		return m.resolveSource(ctx, e)
	case journal.Destination:
		return m.resolveDest(ctx, e)
	}
	return fmt.Errorf("unknown role %q", e.Role)
}

// transition moves entry id from one of the states from to state to,
// atomically with Decide and Outcome; ok is false if it was elsewhere.
func (m *Migrator) transition(id string, to journal.State, from ...journal.State) (bool, error) {
	m.resolveMu.Lock()
	defer m.resolveMu.Unlock()
	e, err := m.Journal.Get(id)
	if err != nil || !slices.Contains(from, e.State) {
		return false, err
	}
	return true, m.Journal.Set(id, to)
}

// askTimeout bounds one question to a peer from recovery.
const askTimeout = 5 * time.Second

// resolveSource: a migration not yet decided is aborted (nothing was
// committed, so the destination's copy, if any, is fenced and will be
// removed); an aborted one is thawed once its address is free; a committed
// one has the destination told, then its copy here ended.
func (m *Migrator) resolveSource(ctx context.Context, e journal.Entry) error {
	rec := *e.Source
	f := m.frozenFrom(e.Container, rec, rec.Dirs[0])
	peer, perr := m.Peer(e.Peer, e.PeerAddr)
	alive := m.alive(ctx, rec)
	switch e.State {
	case journal.Freezing, journal.Sending:
		to := journal.Aborted
		if !alive && perr == nil {
			// The copy here died with its engine: a copy the destination
			// restored is the container now.
			actx, cancel := context.WithTimeout(ctx, askTimeout)
			out, err := peer.Outcome(actx, e.ID)
			cancel()
			if err != nil {
				return fmt.Errorf("the copy here is gone; asking %s whether it has one: %w", e.Peer, err)
			}
			if out.Outcome == api.OutcomeRestored {
				to = journal.Committed
			}
		}
		if ok, err := m.transition(e.ID, to, journal.Freezing, journal.Sending); !ok || err != nil {
			return err // changed meanwhile: the next round sees it
		}
		log.Printf("migration %s of %s to %s: %s (this agent stopped during it)", e.ID, e.Container, e.Peer, to)
		e.State = to
		return m.resolveSource(ctx, e)
	case journal.Aborted:
		if rec.RuncRoot != "" && alive {
			// A dump cut short leaves CRIU's own lock.
			unlockCRIU(ctx, rec.Pid)
		}
		if perr == nil {
			_ = m.tell(ctx, peer, e.ID, false, 1)
		}
		if !alive && rec.RuncRoot != "" {
			// Its processes died with the engine: bring them back from
			// the images the dump left in tmpfs (the fleet network first,
			// which a restarted engine may have lost).
			if err := m.Workloads.EnsureAnchor(ctx, rec.Network); err != nil {
				return err
			}
			f = &imagesFrozen{m: m, id: rec.ContainerID, name: e.Container, images: rec.Dirs[0]}
		}
		if err := m.undo(ctx, f, rec, 0); err != nil {
			return fmt.Errorf("resuming it here: %w (the destination may still hold its address)", err)
		}
		log.Printf("migration %s of %s: runs on %s again with its state", e.ID, e.Container, m.Node)
		m.removeDirs(rec.Dirs...)
		return m.Journal.Remove(e.ID)
	case journal.Committed:
		if perr != nil {
			return perr
		}
		// The copy here stays, frozen, until the destination has taken
		// the decision: a destination whose copy died can still refuse it.
		err := m.tell(ctx, peer, e.ID, true, 1)
		if errdefs.IsFailedPrecondition(err) {
			if _, err := m.transition(e.ID, journal.Aborted, journal.Committed); err != nil {
				return err
			}
			return fmt.Errorf("%s refused the commit (%v): aborted, the copy here resumes", e.Peer, err)
		}
		if err != nil {
			return fmt.Errorf("telling %s it is committed: %w", e.Peer, err)
		}
		if err := m.endSource(ctx, f, e.Container, rec); err != nil {
			return err
		}
		log.Printf("migration %s of %s to %s: committed, copy here removed", e.ID, e.Container, e.Peer)
		return m.Journal.Remove(e.ID)
	}
	return fmt.Errorf("unknown source state %q", e.State)
}

// alive says whether the migrating container's processes still exist here
// (frozen or running): an engine that stopped took them along.
func (m *Migrator) alive(ctx context.Context, rec journal.SourceRecord) bool {
	res, err := m.Engine.ContainerInspect(ctx, rec.ContainerID, client.ContainerInspectOptions{})
	if err != nil {
		return !errdefs.IsNotFound(err) // unknown: assume it is
	}
	return res.Container.State.Running && (rec.Pid == 0 || res.Container.State.Pid == rec.Pid)
}

// imagesFrozen is a fast-path checkpoint whose container died after the
// dump: resuming it is a restore from the images still in tmpfs.
type imagesFrozen struct {
	m        *Migrator
	id, name string
	images   string
}

func (f *imagesFrozen) imagesDir() string   { return f.m.host(f.images) }
func (f *imagesFrozen) end(context.Context) {}
func (f *imagesFrozen) resume(ctx context.Context) error {
	if err := f.m.restore(ctx, f.id, f.name, true, f.images); err != nil {
		return err
	}
	f.m.resumeSysctls(ctx, f.id, f.name)
	// The dump was made with the network locked, and brought the lock along.
	if pid := f.m.fencedPid(ctx, f.id, ""); pid != 0 {
		return unlockNetwork(ctx, pid)
	}
	return nil
}

// resolveDest: a twin not restored is removed (the source cannot have
// committed it); a restored one, fenced, waits for the decision, and after
// decisionWait asks the source, which alone decides.
func (m *Migrator) resolveDest(ctx context.Context, e journal.Entry) error {
	if e.State == journal.Restored {
		if time.Since(e.Updated) < decisionWait {
			return nil
		}
		peer, err := m.Peer(e.Peer, e.PeerAddr)
		if err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(ctx, askTimeout)
		out, err := peer.Outcome(actx, e.ID)
		cancel()
		if err != nil {
			return fmt.Errorf("asking %s for the outcome (the copy here stays fenced): %w", e.Peer, err)
		}
		if out.Outcome != api.OutcomeCommitted && out.Outcome != api.OutcomeAborted {
			return nil
		}
		return m.settleIf(ctx, e.ID, journal.Restored, out.Outcome == api.OutcomeCommitted)
	}
	return m.settleIf(ctx, e.ID, journal.Receiving, false)
}

// settleIf settles a destination's entry still in state and not driven by
// a live request.
func (m *Migrator) settleIf(ctx context.Context, id string, state journal.State, commit bool) error {
	m.resolveMu.Lock()
	defer m.resolveMu.Unlock()
	e, err := m.Journal.Get(id)
	if err != nil || e.State != state || m.isActive(id) {
		return nil
	}
	return m.settleDest(ctx, e, commit)
}

// Outcome answers the other side of a migration: as its source, the
// decision (deciding abort if no live request drives an undecided one);
// a migration this node no longer knows was never committed from here, or
// was and the destination acknowledged it, so it has nothing left to ask.
func (m *Migrator) Outcome(_ context.Context, from, id string) (api.Outcome, error) {
	if !migrationID.MatchString(id) {
		return api.Outcome{}, workloads.Refuse(errdefs.ErrInvalidArgument, "bad migration id %q", id)
	}
	m.resolveMu.Lock()
	defer m.resolveMu.Unlock()
	e, err := m.Journal.Get(id)
	if errors.Is(err, os.ErrNotExist) {
		return api.Outcome{Outcome: api.OutcomeAborted}, nil
	}
	if err != nil {
		return api.Outcome{}, err
	}
	if e.Peer != from {
		return api.Outcome{}, workloads.Refuse(errdefs.ErrPermissionDenied, "node %s is not a side of migration %q", from, id)
	}
	if e.Role != journal.Source {
		if e.State == journal.Restored {
			return api.Outcome{Outcome: api.OutcomeRestored}, nil
		}
		return api.Outcome{Outcome: api.OutcomePending}, nil
	}
	switch e.State {
	case journal.Committed:
		return api.Outcome{Outcome: api.OutcomeCommitted}, nil
	case journal.Aborted:
		return api.Outcome{Outcome: api.OutcomeAborted}, nil
	}
	if !m.isActive(id) {
		// Undecided and no one drives it: abort (the resolver thaws it).
		if err := m.Journal.Set(id, journal.Aborted); err != nil {
			return api.Outcome{}, err
		}
		return api.Outcome{Outcome: api.OutcomeAborted}, nil
	}
	return api.Outcome{Outcome: api.OutcomePending}, nil
}

// Migrating says why the container called name must not change now: a
// migration of it runs or is not finished (workloads.Manager.Migrating).
func (m *Migrator) Migrating(name string) string {
	m.activeMu.Lock()
	defer m.activeMu.Unlock()
	return m.migratingLocked(name)
}

// migratingLocked is Migrating; callers hold activeMu (never while taking
// another lock: rm and resize ask it under the ledger lock).
func (m *Migrator) migratingLocked(name string) string {
	for id, n := range m.active {
		if n == name {
			return "migration " + id + " of it is running"
		}
	}
	entries, _ := m.Journal.List()
	for _, e := range entries {
		if e.Container == name {
			return fmt.Sprintf("migration %s of it (%s %s, peer %s) is being finished", e.ID, e.Role, e.State, e.Peer)
		}
	}
	return ""
}

// Unfinished names a migration this node has not finished, if any.
func (m *Migrator) Unfinished() string {
	m.activeMu.Lock()
	defer m.activeMu.Unlock()
	for id, n := range m.active {
		return "migration " + id + " of " + n
	}
	entries, _ := m.Journal.List()
	for _, e := range entries {
		return fmt.Sprintf("migration %s of %s (%s %s)", e.ID, e.Container, e.Role, e.State)
	}
	return ""
}
