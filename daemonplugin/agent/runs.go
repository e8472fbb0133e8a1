package agent

import (
	"sync"
	"time"

	"github.com/containerd/errdefs"

	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
)

// runs keeps the progress of the migrations this node drove as source, so
// that a CLI that was interrupted (or another one) can follow a migration
// to its end: `docker fleet migrate --follow ID`.
type runs struct {
	mu   sync.Mutex
	byID map[string]*run
}

// run is one migration's events; the last has its result or error.
type run struct {
	events  []api.MigrateEvent
	done    bool
	ended   time.Time
	changed chan struct{} // closed and replaced at each event
}

// keepRuns is how long a finished migration can still be followed.
const keepRuns = time.Hour

// start makes the log of migration id.
func (r *runs) start(id string) *run {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byID == nil {
		r.byID = map[string]*run{}
	}
	for k, v := range r.byID {
		if v.done && time.Since(v.ended) > keepRuns {
			delete(r.byID, k)
		}
	}
	x := &run{changed: make(chan struct{})}
	r.byID[id] = x
	return x
}

// add appends an event; one with a result or an error ends the run.
func (r *runs) add(x *run, ev api.MigrateEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	x.events = append(x.events, ev)
	if ev.Result != nil || ev.Error != "" {
		x.done, x.ended = true, time.Now()
	}
	close(x.changed)
	x.changed = make(chan struct{})
}

// follow passes every event of migration id to send, from the first, until
// the last or until stop is closed.
func (r *runs) follow(id string, stop <-chan struct{}, send func(api.MigrateEvent)) error {
	r.mu.Lock()
	x, ok := r.byID[id]
	r.mu.Unlock()
	if !ok {
		return workloads.Refuse(errdefs.ErrNotFound, "no migration %s was driven from this node in the last %s", id, keepRuns)
	}
	for next := 0; ; {
		r.mu.Lock()
		evs, done, changed := x.events[next:], x.done, x.changed
		r.mu.Unlock()
		for _, ev := range evs {
			send(ev)
		}
		next += len(evs)
		if done {
			return nil
		}
		select {
		case <-changed:
		case <-stop:
			return nil
		}
	}
}
