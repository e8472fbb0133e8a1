// Package progressview shows the progress of migrations as docker pull
// shows its layers: it turns their events into docker's JSON messages and
// hands them to docker's own renderer (jsonmessage). On a terminal each
// phase (or, for several migrations, each container) has a line of its
// own, updated in place, and the transfer a bar with its bytes, rate and
// time left; elsewhere it prints plain lines, one a phase change and, for
// the transfer, one every few seconds or every tenth of it, never a
// terminal escape code.
package progressview

import (
	"fmt"
	"io"
	"iter"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/docker/cli/cli/streams"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client/pkg/jsonmessage"

	"github.com/docker-fleet/fleet/shared/api"
)

// plainEvery is how often, without a terminal, a transfer prints its
// progress at most (besides each tenth of it, when its total is known).
const plainEvery = 5 * time.Second

// View renders progress on one output stream until Close.
type View struct {
	term  bool
	width int // the terminal's columns, for what a line may hold
	now   func() time.Time

	mu     sync.Mutex
	closed bool
	lines  map[string]*line // a migration's state, by the key Migration gave
	msgs   chan jsonstream.Message
	done   chan struct{}
}

// New renders on out, with bars if it is a terminal.
func New(out *streams.Out) *View {
	width := 0
	if out.IsTerminal() {
		_, w := out.GetTtySize()
		width = int(w)
	}
	return start(out, out.FD(), out.IsTerminal(), width)
}

// start runs docker's renderer on out; fd is the terminal it asks for its
// width (jsonmessage draws no bar under 111 columns).
func start(out io.Writer, fd uintptr, term bool, width int) *View {
	if width <= 0 {
		width = 200 // jsonmessage's own guess when it cannot ask
	}
	v := &View{term: term, width: width, now: time.Now, lines: map[string]*line{},
		msgs: make(chan jsonstream.Message, 64), done: make(chan struct{})}
	var seq iter.Seq2[jsonstream.Message, error] = func(yield func(jsonstream.Message, error) bool) {
		for m := range v.msgs {
			if !yield(m, nil) {
				return
			}
		}
	}
	go func() {
		defer close(v.done)
		// Messages carry no Error: it cannot fail.
		_ = jsonmessage.DisplayJSONMessages(seq, out, fd, term, nil)
		for range v.msgs { // drain, should it ever stop early
		}
	}()
	return v
}

// Close shows what is left and returns once it is written.
func (v *View) Close() error {
	v.mu.Lock()
	if !v.closed {
		v.closed = true
		close(v.msgs)
	}
	v.mu.Unlock()
	<-v.done
	return nil
}

// Write prints p as lines of their own (the deployer's notices), between
// the live lines rather than through them.
func (v *View) Write(p []byte) (int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for l := range strings.Lines(string(p)) {
		v.send(jsonstream.Message{Status: strings.TrimRight(l, "\r\n")})
	}
	return len(p), nil
}

// Migration is the onEvent of one migration. With key "" (one migration)
// each phase has its line, named after it; with a key (a container's
// name: several migrations, as leave runs them) the migration has one
// line, named so, showing its phase.
func (v *View) Migration(key string) func(api.MigrateEvent) {
	return func(ev api.MigrateEvent) {
		v.mu.Lock()
		defer v.mu.Unlock()
		l := v.lines[key]
		if l == nil {
			l = &line{key: key}
			v.lines[key] = l
		}
		v.event(l, ev)
	}
}

// line is what is shown of one migration.
type line struct {
	key   string
	phase string // the phase of the last event
	msg   string // its last message

	// The transfer: bytes sent of total (0: not known), from when its
	// first event came; what was printed last without a terminal.
	sending      bool
	bytes, total int64
	since        time.Time
	printedAt    time.Time
	printedBytes int64
}

// event shows one event of l's migration.
func (v *View) event(l *line, ev api.MigrateEvent) {
	if ev.Phase != l.phase && l.phase == api.PhaseTransfer && l.sending {
		if ev.Result != nil {
			// The last count may not have come (older agents).
			l.bytes = max(l.bytes, ev.Result.Bytes)
		}
		v.endTransfer(l, ev.Phase == api.PhaseRestore || ev.Result != nil)
	}
	switch {
	case ev.Result != nil:
		if l.key != "" {
			v.status(l, "", fmt.Sprintf("migrated to %s, downtime %.2fs", ev.Result.To, ev.Result.Downtime), nil)
		} else if l.phase != "" && l.phase != api.PhaseTransfer {
			v.finish(l)
		}
	case ev.Error != "":
		// The command prints the error itself; several migrations
		// show theirs on their line.
		if l.key != "" {
			v.status(l, "", "failed: "+ev.Error, nil)
		}
	case ev.Phase == api.PhaseTransfer && ev.Bytes > 0:
		v.transfer(l, ev)
	case ev.Message != "":
		if ev.Phase != l.phase && ev.Phase != api.PhaseRollback && ev.Phase != api.PhaseDone && l.phase != api.PhaseTransfer {
			v.finish(l)
		}
		if ev.Phase == api.PhaseTransfer && !l.sending {
			l.since, l.sending, l.bytes, l.total, l.printedBytes = v.now(), true, 0, 0, 0
		}
		l.phase, l.msg = ev.Phase, ev.Message
		if ev.Phase == api.PhaseStart && l.key == "" {
			// The migration's id, for --follow: a line that stays.
			v.send(jsonstream.Message{ID: ev.Phase, Status: ev.Message})
			return
		}
		v.status(l, ev.Phase, ev.Message, nil)
	}
}

// finish ends the line of a phase whose message says it was under way
// ("asking h3", "restoring on h3"), as git ends its own: ", done".
func (v *View) finish(l *line) {
	switch {
	case !v.term || l.key != "":
		return
	case l.phase == "" || l.phase == api.PhaseStart || l.phase == api.PhaseRollback || l.phase == api.PhaseDone:
		return
	}
	if first, _, _ := strings.Cut(l.msg, " "); strings.HasSuffix(first, "ing") {
		v.status(l, l.phase, l.msg+", done", nil)
	}
	l.msg = ""
}

// transfer shows the bytes sent so far.
func (v *View) transfer(l *line, ev api.MigrateEvent) {
	if !l.sending {
		l.since, l.sending, l.printedBytes = v.now(), true, 0
	}
	l.phase, l.bytes = api.PhaseTransfer, ev.Bytes
	if ev.Total > 0 {
		l.total = ev.Total
	}
	rate, elapsed := l.rate(v.now())
	if v.term {
		status := "sending"
		if rate > 0 {
			status += " at " + units.HumanSize(rate) + "/s"
		}
		p := &jsonstream.Progress{Current: l.bytes, Total: l.total}
		if elapsed > 0 {
			p.Start = l.since.Unix()
		}
		v.status(l, api.PhaseTransfer, status, p)
		return
	}
	now := v.now()
	tenth := func(n int64) int64 {
		if l.total <= 0 {
			return 0
		}
		return min(10*n/l.total, 10)
	}
	if l.printedBytes > 0 && now.Sub(l.printedAt) < plainEvery && tenth(l.bytes) <= tenth(l.printedBytes) {
		return
	}
	l.printedAt, l.printedBytes = now, l.bytes
	s := units.HumanSize(float64(l.bytes))
	if l.total > 0 && l.bytes <= l.total {
		s += fmt.Sprintf(" of %s sent (%d%%", units.HumanSize(float64(l.total)), 100*l.bytes/l.total)
		if rate > 0 {
			s += ", " + units.HumanSize(rate) + "/s"
		}
		s += ")"
	} else {
		s += " sent"
		if rate > 0 {
			s += " (" + units.HumanSize(rate) + "/s)"
		}
	}
	v.status(l, api.PhaseTransfer, s, nil)
}

// endTransfer ends the transfer's line: all sent (the bar full) or
// stopped where it was.
func (v *View) endTransfer(l *line, sent bool) {
	l.sending = false
	if l.bytes <= 0 {
		return
	}
	if sent {
		l.total = l.bytes // all of it: the estimate, if any, was only that
	}
	_, elapsed := l.rate(v.now())
	if !v.term {
		if sent && l.printedBytes != l.bytes {
			l.printedBytes = l.bytes
			s := units.HumanSize(float64(l.bytes)) + " sent"
			if elapsed > 0 {
				s += fmt.Sprintf(" in %.1fs", elapsed.Seconds())
			}
			v.status(l, api.PhaseTransfer, s, nil)
		} else if !sent {
			v.status(l, api.PhaseTransfer, "stopped after "+units.HumanSize(float64(l.bytes)), nil)
		}
		return
	}
	status := "stopped"
	if sent {
		status = "sent"
		if elapsed > 0 {
			status += fmt.Sprintf(" in %.1fs", elapsed.Seconds())
		}
	}
	v.status(l, api.PhaseTransfer, status, &jsonstream.Progress{Current: l.bytes, Total: l.total})
}

// rate is the transfer's mean rate in bytes a second and how long it has
// run, both 0 while too short to tell (or when events are replayed at
// once, as --follow does).
func (l *line) rate(now time.Time) (float64, time.Duration) {
	d := now.Sub(l.since)
	if d < 500*time.Millisecond {
		return 0, 0
	}
	return float64(l.bytes) / d.Seconds(), d
}

// status shows a line: the phase's own (one migration) or the
// migration's (its key, the phase before the message). A bar shows the
// progress on a terminal; a message too long for it there goes on a line
// of its own, which stays.
func (v *View) status(l *line, phase, msg string, p *jsonstream.Progress) {
	id := phase
	if l.key != "" {
		id = l.key
		if phase != "" {
			msg = phase + ": " + msg
		}
	}
	if !v.term {
		v.send(jsonstream.Message{ID: id, Status: msg})
		return
	}
	room := v.width - 1 - utf8.RuneCountInString(id) - 2
	if p != nil {
		// The bar, the counts and a time left that may grow.
		room -= 1 + len(jsonmessage.RenderTUIProgress(*p, uint16(v.width))) + 4
		msg = truncate(msg, room)
	} else if utf8.RuneCountInString(msg) > room {
		v.send(jsonstream.Message{ID: id, Status: msg})
		return
	}
	if p == nil {
		p = &jsonstream.Progress{}
	}
	v.send(jsonstream.Message{ID: id, Status: msg, Progress: p})
}

func (v *View) send(m jsonstream.Message) {
	if !v.closed {
		v.msgs <- m
	}
}

// truncate shortens s to n runes at most, marking the cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 1 {
		return ""
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
