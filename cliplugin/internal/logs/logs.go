// Package logs shows a fleet container's logs as one log across its
// migrations: the parts its earlier nodes kept (the source agent keeps a
// container's log before it removes its copy) merged by time with the live
// log of the node it runs on now, and, when followed, the live log again
// from its next node each time it migrates.
package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/containerd/errdefs"

	"github.com/docker-fleet/fleet/shared/api"
)

// Source is where the fleet's logs are read: its agents (Fleet), or a
// test's fakes.
type Source interface {
	// Locate finds the copies of a container in the fleet now: one, or two
	// while it migrates. Unreachable names the nodes that did not answer
	// (nil: every node did).
	Locate(ctx context.Context, name string) (copies []Copy, unreachable error, err error)
	// Kept returns the parts of a container's log that nodes kept;
	// missing names the nodes that could not be asked.
	Kept(ctx context.Context, name string, q api.LogsQuery) (lines []api.LogLine, missing error)
	// Live opens a container's live log on its node.
	Live(ctx context.Context, node, name string, q api.LogsQuery) (Stream, error)
}

// Copy is a container on one node.
type Copy struct {
	Node  string
	State string // the engine's: running, paused, exited…
}

// Stream is a live log; Next says io.EOF at its end.
type Stream interface {
	Next() (api.LogLine, error)
	Close() error
}

// Options are docker logs' own.
type Options struct {
	Follow       bool
	Since, Until time.Time
	// Tail is the number of lines to show from the end of each
	// container's log; negative: all.
	Tail int
	// Warn tells what is left out (a node that did not answer); nil:
	// nothing is told.
	Warn func(error)
	// Settle is how long a followed container may be missing from the
	// fleet before following it ends (default 5s); Poll how often it is
	// looked for meanwhile (default 500ms).
	Settle, Poll time.Duration
}

func (o Options) settle() time.Duration {
	if o.Settle > 0 {
		return o.Settle
	}
	return 5 * time.Second
}

func (o Options) poll() time.Duration {
	if o.Poll > 0 {
		return o.Poll
	}
	return 500 * time.Millisecond
}

// Emit prints one line of container name.
type Emit func(name string, l api.LogLine) error

// Show prints the logs of containers (one, or a service's replicas),
// interleaved by time; with Follow it then follows each until it is gone
// from the fleet (or stopped), its migrations included, or ctx ends.
func Show(ctx context.Context, src Source, names []string, opts Options, emit Emit) error {
	hs := make([]history, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { hs[i], errs[i] = collect(ctx, src, name, opts) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var all []named
	for _, h := range hs {
		for _, l := range h.lines {
			all = append(all, named{h.name, l})
		}
	}
	// Stable: a container's own lines keep their order on equal times.
	slices.SortStableFunc(all, func(a, b named) int { return a.line.Time.Compare(b.line.Time) })
	for _, n := range all {
		if err := emit(n.name, n.line); err != nil {
			return err
		}
	}
	if !opts.Follow {
		return nil
	}
	if !opts.Until.IsZero() {
		if time.Now().After(opts.Until) {
			return nil
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, opts.Until)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	locked := func(name string, l api.LogLine) error {
		mu.Lock()
		defer mu.Unlock()
		return emit(name, l)
	}
	for i, h := range hs {
		wg.Go(func() {
			if errs[i] = Follow(ctx, src, h.name, h.cursor, opts, locked); errs[i] != nil {
				cancel() // one fails: the command fails, as a whole
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

type named struct {
	name string
	line api.LogLine
}

// history is a container's log up to now: the lines to show, and the
// time of the newest line read (shown or not), from which following goes
// on.
type history struct {
	name   string
	lines  []api.LogLine
	cursor time.Time
}

// collect reads a container's log up to now: the live logs of its copies
// (two while it migrates: the source's part is not kept yet), then what
// the nodes kept (in that order: a migration in between leaves a part read
// twice, which Merge drops, never one missed).
func collect(ctx context.Context, src Source, name string, opts Options) (history, error) {
	h := history{name: name}
	q := api.LogsQuery{Since: opts.Since, Until: opts.Until}
	switch {
	case opts.Tail > 0:
		q.Tail = opts.Tail
	case opts.Tail == 0:
		// Nothing to show; the newest line still tells where to follow from.
		q.Tail = 1
	}
	for attempt := 0; ; attempt++ {
		copies, unreachable, err := src.Locate(ctx, name)
		if err != nil {
			return h, err
		}
		var live []api.LogLine
		moved := false
		for _, c := range copies {
			lines, err := readAll(ctx, src, c.Node, name, q)
			if errdefs.IsNotFound(err) && attempt < 3 {
				moved = true // it left that node meanwhile: look again
				break
			}
			if err != nil {
				return h, err
			}
			live = append(live, lines...)
		}
		if moved {
			if err := sleep(ctx, opts.poll()); err != nil {
				return h, err
			}
			continue
		}
		kq := q
		kq.Kept = true
		kept, missing := src.Kept(ctx, name, kq)
		if len(copies) == 0 && len(kept) == 0 {
			if unreachable != nil {
				return h, fmt.Errorf("no container %s on the nodes that answer (%w)", name, unreachable)
			}
			return h, errdefs.ErrNotFound.WithMessage(fmt.Sprintf("no container or service named %q in the fleet", name))
		}
		if missing != nil && opts.Warn != nil {
			opts.Warn(fmt.Errorf("%s: what nodes that did not answer kept of its log is left out: %w", name, missing))
		}
		lines := Window(Merge(kept, live), opts.Since, opts.Until)
		if len(lines) > 0 {
			h.cursor = lines[len(lines)-1].Time
		}
		h.lines = Tail(lines, opts.Tail)
		return h, nil
	}
}

// readAll reads a container's live log to its end (not followed).
func readAll(ctx context.Context, src Source, node, name string, q api.LogsQuery) ([]api.LogLine, error) {
	s, err := src.Live(ctx, node, name, q)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var out []api.LogLine
	for {
		l, err := s.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, l)
	}
}

// Follow prints a container's live log from after cursor on, wherever it
// runs: when its stream ends (it migrated: its copy there is removed once
// the destination's runs), it is looked for again and followed on its new
// node from the last line printed, with the lines at or before it dropped,
// so that nothing shows twice and nothing is missed. It ends without error
// once the container has been gone from every node for Settle (removed),
// when it stops, or when ctx ends (Ctrl-C, --until); with an error when
// it cannot be followed for Settle.
func Follow(ctx context.Context, src Source, name string, cursor time.Time, opts Options, emit Emit) error {
	var stuck time.Time // since when it could not be followed (zero: it could)
	var why error       // and the last reason, if one was an error
	for ctx.Err() == nil {
		copies, unreachable, err := src.Locate(ctx, name)
		c, ok := pick(copies)
		settles := true // whether this wait counts towards Settle
		switch {
		case err != nil:
			why = err
		case ok:
			s, err := src.Live(ctx, c.Node, name, api.LogsQuery{Follow: true, Since: cursor, Until: opts.Until})
			if errdefs.IsNotFound(err) {
				why = nil // it left the node meanwhile
				break
			}
			if err != nil {
				why = err
				break
			}
			n, end, err := drain(s, name, &cursor, emit)
			if err != nil {
				return err
			}
			if n > 0 {
				stuck, why = time.Time{}, nil
				continue // it stopped, left the node, or the link broke: look again
			}
			if errors.Is(end, io.EOF) {
				// Empty (a container that restarts): look again after a
				// pause, however often.
				stuck, why, settles = time.Time{}, nil, false
			} else {
				why = end
			}
		case len(copies) > 1:
			// A migration under way, its source stopped by the engine's
			// checkpoint and its twin not restored yet: however long it
			// takes.
			stuck, why, settles = time.Time{}, nil, false
		case len(copies) == 1 && unreachable == nil && copies[0].State != "created":
			return nil // stopped: docker logs -f stops with it
		case len(copies) == 0:
			why = nil
			if unreachable != nil {
				why = fmt.Errorf("it is on none of the nodes that answer (%w)", unreachable)
			}
		}
		if settles {
			if stuck.IsZero() {
				stuck = time.Now()
			}
			if time.Since(stuck) >= opts.settle() {
				if why != nil {
					return fmt.Errorf("following %s: %w", name, why)
				}
				return nil // gone from the fleet: removed
			}
		}
		if sleep(ctx, opts.poll()) != nil {
			break
		}
	}
	return nil
}

// drain prints a followed stream's lines after *cursor until it ends,
// moving *cursor, and says how many it printed and how the stream ended
// (io.EOF, or its error); err is a failed emit.
func drain(s Stream, name string, cursor *time.Time, emit Emit) (n int, end, err error) {
	defer s.Close()
	for {
		l, end := s.Next()
		if end != nil {
			return n, end, nil
		}
		if !cursor.IsZero() && !l.Time.After(*cursor) {
			continue // shown already, from its earlier node or stream
		}
		if err := emit(name, l); err != nil {
			return n, nil, err
		}
		*cursor = l.Time
		n++
	}
}

// pick is the copy to follow: the running one (during a migration the
// destination's, once restored), else one that may run on (paused: frozen
// for a migration, or by its user); none if no copy may write.
func pick(copies []Copy) (Copy, bool) {
	for _, state := range []string{"running", "paused", "restarting"} {
		for _, c := range copies {
			if c.State == state {
				return c, true
			}
		}
	}
	return Copy{}, false
}

// Merge is a container's log from its parts, in time order; a line found
// in two parts (the same time and text) is kept once.
func Merge(parts ...[]api.LogLine) []api.LogLine {
	var out []api.LogLine
	for _, p := range parts {
		out = append(out, p...)
	}
	slices.SortStableFunc(out, func(a, b api.LogLine) int { return a.Time.Compare(b.Time) })
	type key struct {
		t    time.Time
		text string
	}
	seen := map[key]bool{}
	kept := out[:0]
	for _, l := range out {
		k := key{l.Time.UTC(), l.Text}
		if seen[k] {
			continue
		}
		seen[k] = true
		kept = append(kept, l)
	}
	return kept
}

// Window keeps the lines from since to until (both included; zero: no
// bound).
func Window(lines []api.LogLine, since, until time.Time) []api.LogLine {
	return slices.DeleteFunc(lines, func(l api.LogLine) bool {
		return (!since.IsZero() && l.Time.Before(since)) || (!until.IsZero() && l.Time.After(until))
	})
}

// Tail keeps the last n lines (n negative: all).
func Tail(lines []api.LogLine, n int) []api.LogLine {
	if n < 0 || len(lines) <= n {
		return lines
	}
	return lines[len(lines)-n:]
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
