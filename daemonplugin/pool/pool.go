// Package pool keeps a node's shared pool, as Kubernetes' static CPU manager
// does: every container that holds no exclusive cores, fleet or not, started
// before the fleet or after, runs only on the cores no fleet container holds
// exclusively, and gets back what it had when those cores are given back.
// It follows the engine's container events, so a create, resize, rm,
// migration or failover (or a `docker run` by hand) moves the pool at once,
// with `docker update`: nothing restarts.
package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/labels"
)

// Engine is what the pool asks of the node's engine.
type Engine interface {
	ContainerList(context.Context, client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerInspect(context.Context, string, client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ContainerUpdate(context.Context, string, client.ContainerUpdateOptions) (client.ContainerUpdateResult, error)
	Events(context.Context, client.EventsListOptions) client.EventsResult
}

// narrowing is a container the pool narrowed: the cpuset it had ("" for
// any core), and the one the pool gave it. A container whose cpuset is no
// longer Set was changed by hand since: what it has is what it wants.
type narrowing struct {
	Want string `json:"want"`
	Set  string `json:"set"`
}

// Container is one of the node's containers as the pool (and the guard)
// sees it.
type Container struct {
	ID   string
	Name string
	// Fleet: a fleet container (it has a service); Exclusive its cores
	// when it holds them exclusively.
	Fleet     bool
	Exclusive cpuset.Set
	// Pid is its first process's, while it runs (0: it does not).
	Pid int
}

// Pool confines the node's containers to its shared cores.
type Pool struct {
	Engine Engine
	// Cores lists the node's cores.
	Cores func() (cpuset.Set, error)
	// File keeps the cpusets the pool narrowed (container ID → what it had,
	// "" for any core), so that an agent started anew gives them back.
	File string

	mu       sync.Mutex
	narrowed map[string]narrowing
	loaded   bool
	// seen is the node as the last reconcile found it (Snapshot): read
	// without the lock, by the guard, while a reconcile may be waiting
	// on the engine that waits on the guard.
	seen   atomic.Pointer[[]Container]
	shared cpuset.Set
	// released: the node left the fleet; the pool confines nothing more.
	released bool

	kick chan struct{}
	once sync.Once
}

// Run reconciles at once, then on every container event of the engine, on
// every Kick, and every interval in case an event was missed (the engine
// restarting, say). It returns when ctx ends.
func (p *Pool) Run(ctx context.Context, interval time.Duration) {
	p.init()
	go p.watch(ctx)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if err := p.Reconcile(ctx); err != nil && ctx.Err() == nil {
			log.Printf("shared pool: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
			// Events come in bursts (a create, a start, a rename): one
			// reconcile for the burst.
			time.Sleep(burst)
			select {
			case <-p.kick:
			default:
			}
		case <-tick.C:
		}
	}
}

// burst is how long the pool lets a burst of engine events gather.
const burst = 50 * time.Millisecond

func (p *Pool) init() { p.once.Do(func() { p.kick = make(chan struct{}, 1) }) }

// Kick asks for a reconcile soon; many kicks before it runs make one.
func (p *Pool) Kick() {
	p.init()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// watch kicks on the container events that change who runs where.
func (p *Pool) watch(ctx context.Context) {
	f := make(client.Filters).Add("type", "container")
	for _, e := range []string{"create", "start", "update", "destroy", "rename", "restart", "die", "stop"} {
		f = f.Add("event", e)
	}
	for ctx.Err() == nil {
		res := p.Engine.Events(ctx, client.EventsListOptions{Filters: f})
	stream:
		for {
			select {
			case <-ctx.Done():
				return
			case <-res.Messages:
				p.Kick()
			case err := <-res.Err:
				if ctx.Err() == nil {
					log.Printf("shared pool: engine events: %v", err)
				}
				break stream
			}
		}
		// The engine went away (or restarts): read it anew once back.
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
			p.Kick()
		}
	}
}

// Wanted is the cpuset the container called id had before the pool narrowed
// it ("" for any core), if it did: the ledger counts what a container
// pinned by hand asked for, not what the pool left it.
func (p *Pool) Wanted(id string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.loadLocked(); err != nil {
		return "", false
	}
	v, ok := p.narrowed[id]
	return v.Want, ok
}

// Shared is the shared pool as the last reconcile set it (nil before it).
func (p *Pool) Shared() cpuset.Set {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.shared
}

// Snapshot is the node's containers as the last reconcile found them.
func (p *Pool) Snapshot() []Container {
	if s := p.seen.Load(); s != nil {
		return *s
	}
	return nil
}

// Reconcile confines every container without exclusive cores to the shared
// pool, and widens again those the pool narrowed when it has grown.
func (p *Pool) Reconcile(ctx context.Context) error {
	cores, err := p.Cores()
	if err != nil {
		return err
	}
	all, err := p.read(ctx)
	if err != nil {
		return err
	}
	var exclusive cpuset.Set
	for _, c := range all {
		exclusive = exclusive.Union(c.Exclusive)
	}
	shared := cores.Minus(exclusive)
	if len(shared) == 0 {
		// Never confine anything to no core (the ledger keeps one shared;
		// this is a node whose cores went offline).
		shared = cores
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.loadLocked(); err != nil {
		return err
	}
	if p.released {
		return nil
	}
	seen := make([]Container, 0, len(all))
	live := map[string]bool{}
	var errs []error
	for _, c := range all {
		seen = append(seen, c.Container)
		live[c.ID] = true
		if len(c.Exclusive) > 0 {
			delete(p.narrowed, c.ID)
			continue
		}
		if err := p.confineLocked(ctx, c, cores, shared); err != nil {
			errs = append(errs, err)
		}
	}
	for id := range p.narrowed {
		if !live[id] {
			delete(p.narrowed, id)
		}
	}
	p.seen.Store(&seen)
	p.shared = shared
	return errors.Join(append(errs, p.saveLocked())...)
}

// observed is a container with its cpuset as the engine has it now.
type observed struct {
	Container
	cpuset string
}

// read lists the node's containers, with their cpusets and fleet labels.
func (p *Pool) read(ctx context.Context) ([]observed, error) {
	list, err := p.Engine.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	out := make([]observed, 0, len(list.Items))
	for _, it := range list.Items {
		res, err := p.Engine.ContainerInspect(ctx, it.ID, client.ContainerInspectOptions{})
		if errdefs.IsNotFound(err) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
		ctr := res.Container
		if ctr.State != nil && (ctr.State.Dead || ctr.State.Status == container.StateRemoving) {
			continue
		}
		o := observed{Container: Container{ID: ctr.ID, Name: strings.TrimPrefix(ctr.Name, "/")}, cpuset: ctr.HostConfig.CpusetCpus}
		if ctr.State != nil && ctr.State.Running {
			o.Pid = ctr.State.Pid
		}
		_, o.Fleet = ctr.Config.Labels[labels.Service]
		if o.Fleet && ctr.Config.Labels[labels.Exclusive] == "true" {
			o.Exclusive, _ = cpuset.Parse(ctr.HostConfig.CpusetCpus)
		}
		out = append(out, o)
	}
	return out, nil
}

// confineLocked gives c what it asked for within the shared pool: its own
// cpuset where that meets the pool, else the whole pool.
func (p *Pool) confineLocked(ctx context.Context, c observed, cores, shared cpuset.Set) error {
	rec, narrowed := p.narrowed[c.ID]
	if narrowed && rec.Set != c.cpuset {
		// Changed by hand since the pool narrowed it.
		delete(p.narrowed, c.ID)
		narrowed = false
	}
	want := c.cpuset
	if narrowed {
		want = rec.Want
	}
	wantSet := anywhere(want, cores)
	target := wantSet.Intersect(shared)
	if len(target) == 0 {
		target = shared
	}
	widen := target.String() == wantSet.String()
	if target.String() == anywhere(c.cpuset, cores).String() {
		if widen {
			delete(p.narrowed, c.ID)
		}
		return nil
	}
	set := target.String()
	if widen && want != "" {
		set = want
	}
	if !widen {
		// Kept before the engine changes it: the ledger reads it meanwhile.
		p.narrowed[c.ID] = narrowing{Want: want, Set: set}
		if err := p.saveLocked(); err != nil {
			return err
		}
	}
	_, err := p.Engine.ContainerUpdate(ctx, c.ID, client.ContainerUpdateOptions{Resources: &container.Resources{CpusetCpus: set}})
	switch {
	case errdefs.IsNotFound(err):
		delete(p.narrowed, c.ID)
		return nil
	case err != nil:
		// As it was: the next reconcile tries again.
		if narrowed {
			p.narrowed[c.ID] = rec
		} else {
			delete(p.narrowed, c.ID)
		}
		return fmt.Errorf("confining %s to cores %s: %w", c.Name, set, err)
	}
	if widen {
		delete(p.narrowed, c.ID)
	}
	return nil
}

// anywhere parses a container's cpuset, "" (or nonsense) being every core.
func anywhere(s string, cores cpuset.Set) cpuset.Set {
	set, err := cpuset.Parse(s)
	if err != nil || len(set) == 0 {
		return cores
	}
	return set
}

func (p *Pool) loadLocked() error {
	if p.loaded {
		return nil
	}
	p.narrowed = map[string]narrowing{}
	if p.File == "" {
		p.loaded = true
		return nil
	}
	b, err := os.ReadFile(p.File)
	if errors.Is(err, os.ErrNotExist) {
		p.loaded = true
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &p.narrowed); err != nil {
		return fmt.Errorf("%s: %w", p.File, err)
	}
	p.loaded = true
	return nil
}

func (p *Pool) saveLocked() error {
	if p.File == "" {
		return nil
	}
	b, err := json.Marshal(maps.Clone(p.narrowed))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p.File), 0o700); err != nil {
		return err
	}
	tmp := p.File + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p.File)
}

// Release gives every container the pool narrowed what it had, and stops
// the pool: the node leaves the fleet.
func (p *Pool) Release(ctx context.Context) error {
	cores, err := p.Cores()
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.loadLocked(); err != nil {
		return err
	}
	p.released = true
	var errs []error
	for id, rec := range p.narrowed {
		set := rec.Want
		if set == "" {
			set = cores.String()
		}
		_, err := p.Engine.ContainerUpdate(ctx, id, client.ContainerUpdateOptions{Resources: &container.Resources{CpusetCpus: set}})
		if err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("giving %s back cores %s: %w", id, set, err))
			continue
		}
		delete(p.narrowed, id)
	}
	return errors.Join(append(errs, p.saveLocked())...)
}
