// Package events turns the swarm's own event stream into the fleet's:
// the fleet keeps its state in swarm configs (deaths, relocations,
// migration histories), so a change of one of those is a fleet event, seen
// by anyone who can read the manager's events, with no server of its own.
package events

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// Event is one thing that happened to the fleet.
type Event struct {
	Time time.Time `json:"time"`
	// Type is "node", "relocation" or "migration".
	Type string `json:"type"`
	// Action: a node's "down" or "up"; a relocation's kind ("cold");
	// a migration's "done".
	Action    string `json:"action"`
	Node      string `json:"node,omitempty"`
	Container string `json:"container,omitempty"`
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
	// Containers is how many containers a dead node leaves to relocate.
	Containers int `json:"containers,omitempty"`
	// Downtime of a migration, in seconds.
	Downtime float64 `json:"downtimeSeconds,omitempty"`
	// By is what moved a migrated container when no operator did (the
	// automatic rebalance, and why).
	By string `json:"by,omitempty"`
}

// Options bound the stream as docker events does: Since and Until are
// timestamps or durations before now ("10m"); without Until it follows
// until ctx ends.
type Options struct {
	Since, Until string
}

// Watch streams the fleet's events to emit, from its manager's.
func Watch(ctx context.Context, f *fleet.Fleet, opts Options, emit func(Event) error) error {
	res := f.Manager.Events(ctx, client.EventsListOptions{Since: opts.Since, Until: opts.Until,
		Filters: make(client.Filters).Add("type", string(events.ConfigEventType))})
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-res.Err:
			if errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		case m := <-res.Messages:
			ev, ok := translate(ctx, f, m)
			if !ok {
				continue
			}
			if err := emit(ev); err != nil {
				return err
			}
		}
	}
}

// translate makes a fleet event of a config's event, when it is one.
func translate(ctx context.Context, f *fleet.Fleet, m events.Message) (Event, bool) {
	name := m.Actor.Attributes["name"]
	ev := Event{Time: time.Unix(0, m.TimeNano).UTC()}
	switch {
	case strings.HasPrefix(name, labels.DownConfigPrefix):
		ev.Type, ev.Node = "node", strings.TrimPrefix(name, labels.DownConfigPrefix)
		switch m.Action {
		case events.ActionCreate:
			ev.Action = "down"
			if d, err := swarmstore.LoadDown(ctx, f.Manager, ev.Node); err == nil {
				ev.Containers = len(d.Containers)
			}
		case events.ActionRemove:
			ev.Action = "up" // back, and fenced
		default:
			return ev, false
		}
	case strings.HasPrefix(name, labels.RelocationConfigPrefix) && m.Action == events.ActionUpdate:
		// The record as it is now, maybe later than this update: the
		// update that fenced it is no relocation.
		r, err := swarmstore.LoadRelocation(ctx, f.Manager, strings.TrimPrefix(name, labels.RelocationConfigPrefix))
		if err != nil || !r.Done || !r.FencedAt.IsZero() && ev.Time.After(r.FencedAt) {
			return ev, false
		}
		ev.Type, ev.Action, ev.Container, ev.From, ev.To = "relocation", r.Kind, r.Replica, r.From, r.To
	case strings.HasPrefix(name, labels.HistoryConfigPrefix) && (m.Action == events.ActionCreate || m.Action == events.ActionUpdate):
		past, err := f.History(ctx, strings.TrimPrefix(name, labels.HistoryConfigPrefix))
		if err != nil || len(past) == 0 {
			return ev, false
		}
		last := past[len(past)-1]
		ev.Type, ev.Action, ev.Container, ev.From, ev.To, ev.Downtime, ev.By = "migration", "done", last.Container, last.From, last.To, last.Downtime, last.By
	default:
		return ev, false
	}
	return ev, true
}

// String is the event as one line of text.
func (e Event) String() string {
	t := e.Time.Local().Format(time.RFC3339)
	switch e.Type {
	case "node":
		if e.Action == "down" && e.Containers > 0 {
			return t + " node " + e.Node + " down: relocating " + strconv.Itoa(e.Containers) + " container(s)"
		}
		if e.Action == "down" {
			return t + " node " + e.Node + " down"
		}
		return t + " node " + e.Node + " up: its relocated copies removed"
	case "relocation":
		return t + " relocation " + e.Container + " " + e.From + " -> " + e.To + " (" + e.Action + ")"
	case "migration":
		s := t + " migration " + e.Container + " " + e.From + " -> " + e.To + " (downtime " + time.Duration(e.Downtime*float64(time.Second)).Round(time.Millisecond).String() + ")"
		if e.By != "" {
			s += " by " + e.By
		}
		return s
	}
	return t + " " + e.Type + " " + e.Action
}
