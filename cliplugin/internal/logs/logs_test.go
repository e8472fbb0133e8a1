package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
)

var t0 = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

// tick is line i of a container that logs "tick i" every 200ms.
func tick(i int, node string) api.LogLine {
	return api.LogLine{Time: t0.Add(time.Duration(i) * 200 * time.Millisecond), Stream: "stdout", Text: fmt.Sprint("tick ", i), Node: node}
}

func ticks(from, to int, node string) []api.LogLine {
	var out []api.LogLine
	for i := from; i <= to; i++ {
		out = append(out, tick(i, node))
	}
	return out
}

func texts(lines []api.LogLine) []string {
	var out []string
	for _, l := range lines {
		out = append(out, l.Text)
	}
	return out
}

func TestMergeDropsDuplicatesAndSorts(t *testing.T) {
	errLine := api.LogLine{Time: tick(2, "").Time, Stream: "stderr", Text: "oops"}
	got := Merge(ticks(4, 6, "h2"), ticks(1, 4, "h1"), []api.LogLine{errLine}, ticks(3, 3, "h1"))
	assert.DeepEqual(t, texts(got), []string{"tick 1", "tick 2", "oops", "tick 3", "tick 4", "tick 5", "tick 6"})
	// The same line from two parts (a part read twice): the first kept.
	assert.Check(t, is.Equal(got[4].Node, "h2"))
	// The same time in another zone is the same time.
	dup := tick(1, "h3")
	dup.Time = dup.Time.In(time.FixedZone("x", 3600))
	assert.Check(t, is.Len(Merge(ticks(1, 1, "h1"), []api.LogLine{dup}), 1))
}

func TestWindowAndTail(t *testing.T) {
	lines := ticks(1, 10, "h1")
	got := Window(slices.Clone(lines), tick(3, "").Time, tick(7, "").Time)
	assert.DeepEqual(t, texts(got), []string{"tick 3", "tick 4", "tick 5", "tick 6", "tick 7"})
	assert.DeepEqual(t, texts(Tail(got, 2)), []string{"tick 6", "tick 7"})
	assert.Check(t, is.Len(Tail(got, 0), 0))
	assert.Check(t, is.Len(Tail(got, -1), 5))
	assert.Check(t, is.Len(Tail(got, 50), 5))
	assert.Check(t, is.Len(Window(slices.Clone(lines), time.Time{}, time.Time{}), 10))
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"10m":                            now.Add(-10 * time.Minute),
		"1h30m":                          now.Add(-90 * time.Minute),
		"2026-01-02T15:04:05Z":           time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC),
		"2026-01-02T15:04:05.5+01:00":    time.Date(2026, 1, 2, 14, 4, 5, 5e8, time.UTC),
		"2026-01-02T15:04:05":            time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC),
		"2026-01-02":                     time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC),
		"1767366245":                     time.Unix(1767366245, 0),
		"1767366245.25":                  time.Unix(1767366245, 25e7),
		"2026-01-02T15:04:05.123456789Z": time.Date(2026, 1, 2, 15, 4, 5, 123456789, time.UTC),
	} {
		got, err := ParseTime(in, now)
		assert.Check(t, err, in)
		assert.Check(t, got.Equal(want), "%s: %v, want %v", in, got, want)
	}
	for _, bad := range []string{"yesterday", "2026-13-01", "12.", "1.1234567890"} {
		_, err := ParseTime(bad, now)
		assert.Check(t, err != nil, bad)
	}
}

// fake is a fleet whose containers' places and logs a test sets; it is
// safe for Show's goroutines.
type fake struct {
	mu sync.Mutex
	// places are where each container is, as Locate finds them, one
	// entry per call (the last repeats).
	places map[string][][]Copy
	kept   map[string][]api.LogLine
	// live serves a Live call; nil: each node's log from logs.
	live        func(node, name string, q api.LogsQuery) (Stream, error)
	logs        map[string][]api.LogLine // by node+"/"+name
	unreachable error
	asked       []api.LogsQuery // Live's queries, in order
}

func (f *fake) Locate(_ context.Context, name string) ([]Copy, error, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ps := f.places[name]
	if len(ps) == 0 {
		return nil, f.unreachable, nil
	}
	c := ps[0]
	if len(ps) > 1 {
		f.places[name] = ps[1:]
	}
	return c, f.unreachable, nil
}

func (f *fake) Kept(_ context.Context, name string, q api.LogsQuery) ([]api.LogLine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Window(slices.Clone(f.kept[name]), q.Since, q.Until), f.unreachable
}

func (f *fake) Live(_ context.Context, node, name string, q api.LogsQuery) (Stream, error) {
	f.mu.Lock()
	f.asked = append(f.asked, q)
	live, lines := f.live, f.logs[node+"/"+name]
	f.mu.Unlock()
	if live != nil {
		return live(node, name, q)
	}
	lines = Window(slices.Clone(lines), q.Since, q.Until)
	if q.Tail > 0 {
		lines = Tail(lines, q.Tail)
	}
	return &stream{lines: lines, end: io.EOF}, nil
}

type stream struct {
	lines []api.LogLine
	end   error
	// at, if set, is called before each line is given (a test's clock).
	at func(i int)
	i  int
}

func (s *stream) Next() (api.LogLine, error) {
	if s.at != nil {
		s.at(s.i)
	}
	if s.i >= len(s.lines) {
		return api.LogLine{}, s.end
	}
	s.i++
	return s.lines[s.i-1], nil
}

func (s *stream) Close() error { return nil }

// record collects what Show prints.
type record struct {
	mu    sync.Mutex
	lines []string
}

func (r *record) emit(name string, l api.LogLine) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, name+" "+l.Text+" "+l.Node)
	return nil
}

var fast = Options{Tail: -1, Settle: 50 * time.Millisecond, Poll: time.Millisecond}

// A container that migrated h1 → h2 → h3: the two parts the nodes kept and
// the live log make one log; a part read twice shows once.
func TestShowAcrossMigrations(t *testing.T) {
	f := &fake{
		places: map[string][][]Copy{"web.1": {{{Node: "h3", State: "running"}}}},
		kept:   map[string][]api.LogLine{"web.1": append(ticks(1, 5, "h1"), append(ticks(6, 9, "h2"), ticks(9, 9, "h2")...)...)},
		logs:   map[string][]api.LogLine{"h3/web.1": ticks(10, 12, "h3")},
	}
	var r record
	assert.NilError(t, Show(context.Background(), f, []string{"web.1"}, fast, r.emit))
	var want []string
	for i := 1; i <= 12; i++ {
		node := "h3"
		switch {
		case i <= 5:
			node = "h1"
		case i <= 9:
			node = "h2"
		}
		want = append(want, fmt.Sprintf("web.1 tick %d %s", i, node))
	}
	assert.DeepEqual(t, r.lines, want)

	// --tail and --since on the merged log, not on each part.
	f.places["web.1"] = [][]Copy{{{Node: "h3", State: "running"}}}
	r = record{}
	opts := fast
	opts.Tail = 4
	assert.NilError(t, Show(context.Background(), f, []string{"web.1"}, opts, r.emit))
	assert.DeepEqual(t, r.lines, []string{"web.1 tick 9 h2", "web.1 tick 10 h3", "web.1 tick 11 h3", "web.1 tick 12 h3"})
	r = record{}
	opts = fast
	opts.Since, opts.Until = tick(4, "").Time, tick(6, "").Time
	assert.NilError(t, Show(context.Background(), f, []string{"web.1"}, opts, r.emit))
	assert.DeepEqual(t, r.lines, []string{"web.1 tick 4 h1", "web.1 tick 5 h1", "web.1 tick 6 h2"})
	r = record{}
	opts = fast
	opts.Tail = 0
	assert.NilError(t, Show(context.Background(), f, []string{"web.1"}, opts, r.emit))
	assert.Check(t, is.Len(r.lines, 0))
}

// During a migration both copies' live logs count: the source's part is
// not kept until its copy is removed.
func TestShowDuringMigration(t *testing.T) {
	f := &fake{
		places: map[string][][]Copy{"web.1": {{{Node: "h1", State: "paused"}, {Node: "h2", State: "running"}}}},
		logs:   map[string][]api.LogLine{"h1/web.1": ticks(1, 5, "h1"), "h2/web.1": ticks(6, 7, "h2")},
	}
	var r record
	assert.NilError(t, Show(context.Background(), f, []string{"web.1"}, fast, r.emit))
	assert.Check(t, is.Len(r.lines, 7))
}

// A container that left its node between the lookup and the read is
// looked up again, and its old node's part is then found kept.
func TestShowLooksAgainWhenItMoved(t *testing.T) {
	f := &fake{
		places: map[string][][]Copy{"web.1": {{{Node: "h1", State: "running"}}, {{Node: "h2", State: "running"}}}},
		kept:   map[string][]api.LogLine{"web.1": ticks(1, 3, "h1")},
		logs:   map[string][]api.LogLine{"h2/web.1": ticks(4, 5, "h2")},
	}
	f.live = func(node, name string, q api.LogsQuery) (Stream, error) {
		if node == "h1" {
			return nil, errdefs.ErrNotFound.WithMessage("no container web.1 on node h1")
		}
		return &stream{lines: f.logs[node+"/"+name], end: io.EOF}, nil
	}
	var r record
	assert.NilError(t, Show(context.Background(), f, []string{"web.1"}, fast, r.emit))
	assert.DeepEqual(t, r.lines, []string{"web.1 tick 1 h1", "web.1 tick 2 h1", "web.1 tick 3 h1", "web.1 tick 4 h2", "web.1 tick 5 h2"})
}

func TestShowMissing(t *testing.T) {
	f := &fake{places: map[string][][]Copy{}}
	err := Show(context.Background(), f, []string{"nope"}, fast, (&record{}).emit)
	assert.Check(t, errdefs.IsNotFound(err), "%v", err)
	f.unreachable = errors.New("node h3: unreachable")
	err = Show(context.Background(), f, []string{"nope"}, fast, (&record{}).emit)
	assert.Check(t, is.ErrorContains(err, "h3: unreachable"))
}

// A service's replicas interleave by time, each line after its name.
func TestShowService(t *testing.T) {
	f := &fake{
		places: map[string][][]Copy{"web.1": {{{Node: "h1", State: "running"}}}, "web.10": {{{Node: "h2", State: "running"}}}},
		logs: map[string][]api.LogLine{
			"h1/web.1":  {tick(1, "h1"), tick(3, "h1")},
			"h2/web.10": {tick(2, "h2"), tick(4, "h2")},
		},
	}
	var out, errOut bytes.Buffer
	p := &Printer{Out: &out, Err: &errOut, Prefix: true, Timestamps: true}
	p.Pad([]string{"web.1", "web.10"})
	assert.NilError(t, Show(context.Background(), f, []string{"web.1", "web.10"}, fast, p.Print))
	assert.Check(t, is.Equal(out.String(), ""+
		"web.1  | 2026-01-02T15:04:05.200000000Z tick 1\n"+
		"web.10 | 2026-01-02T15:04:05.400000000Z tick 2\n"+
		"web.1  | 2026-01-02T15:04:05.600000000Z tick 3\n"+
		"web.10 | 2026-01-02T15:04:05.800000000Z tick 4\n"))
	assert.Check(t, is.Equal(errOut.String(), ""))
}

func TestPrinterStreams(t *testing.T) {
	var out, errOut bytes.Buffer
	p := &Printer{Out: &out, Err: &errOut}
	assert.NilError(t, p.Print("web.1", api.LogLine{Stream: "stdout", Text: "hello"}))
	assert.NilError(t, p.Print("web.1", api.LogLine{Stream: "stderr", Text: "oops"}))
	assert.Check(t, is.Equal(out.String(), "hello\n"))
	assert.Check(t, is.Equal(errOut.String(), "oops\n"))
}

// -f across a migration: the stream on h1 ends as the container leaves;
// it is looked up again (missing a moment, then on h2) and followed there
// from the last line printed, which h2's agent sends again (since is
// inclusive) and is dropped; it ends, without error, once the container
// is gone from the fleet.
func TestFollowAcrossMigration(t *testing.T) {
	f := &fake{places: map[string][][]Copy{"web.1": {
		{{Node: "h1", State: "running"}},
		{{Node: "h1", State: "exited"}, {Node: "h2", State: "running"}},
		{{Node: "h2", State: "running"}},
		{}, // removed
	}}}
	f.live = func(node, name string, q api.LogsQuery) (Stream, error) {
		assert.Check(t, q.Follow)
		switch node {
		case "h1":
			return &stream{lines: Window(ticks(1, 5, "h1"), q.Since, time.Time{}), end: io.EOF}, nil
		default:
			// Cut once (the link broke) after tick 7: taken up again.
			lines := Window(ticks(5, 9, "h2"), q.Since, time.Time{})
			if q.Since.Before(tick(7, "").Time) {
				return &stream{lines: lines[:min(len(lines), 3)], end: errors.New("connection reset")}, nil
			}
			return &stream{lines: lines, end: io.EOF}, nil
		}
	}
	var r record
	err := Follow(context.Background(), f, "web.1", tick(2, "").Time, fast, r.emit)
	assert.NilError(t, err)
	assert.DeepEqual(t, r.lines, []string{
		"web.1 tick 3 h1", "web.1 tick 4 h1", "web.1 tick 5 h1",
		"web.1 tick 6 h2", "web.1 tick 7 h2", "web.1 tick 8 h2", "web.1 tick 9 h2",
	})
	// h1 from the cursor given, h2 from the last line h1 gave, then from
	// the last line before the cut.
	var since []time.Time
	for _, q := range f.asked {
		since = append(since, q.Since)
	}
	assert.DeepEqual(t, since[:3], []time.Time{tick(2, "").Time, tick(5, "").Time, tick(7, "").Time})
}

// An engine checkpoint stops the source before the twin is restored: two
// copies, neither running, for as long as the migration takes; following
// waits for it rather than ending.
func TestFollowWaitsForAMigration(t *testing.T) {
	waiting := []Copy{{Node: "h1", State: "exited"}, {Node: "h2", State: "created"}}
	places := [][]Copy{{{Node: "h1", State: "running"}}}
	for range 100 { // 100 polls: longer than Settle
		places = append(places, waiting)
	}
	places = append(places, []Copy{{Node: "h2", State: "running"}}, []Copy{})
	f := &fake{places: map[string][][]Copy{"web.1": places}, logs: map[string][]api.LogLine{
		"h1/web.1": ticks(1, 2, "h1"), "h2/web.1": ticks(2, 4, "h2"),
	}}
	opts := fast
	opts.Poll = 2 * time.Millisecond
	var r record
	assert.NilError(t, Follow(context.Background(), f, "web.1", time.Time{}, opts, r.emit))
	assert.DeepEqual(t, r.lines, []string{"web.1 tick 1 h1", "web.1 tick 2 h1", "web.1 tick 3 h2", "web.1 tick 4 h2"})
}

// A container that stops ends following at once, as docker logs -f does.
func TestFollowEndsWhenStopped(t *testing.T) {
	f := &fake{places: map[string][][]Copy{"web.1": {{{Node: "h1", State: "exited"}}}}}
	opts := fast
	opts.Settle = time.Hour
	assert.NilError(t, Follow(context.Background(), f, "web.1", time.Time{}, opts, (&record{}).emit))
}

// Missing while a node does not answer: it may run there; after Settle,
// an error that says so.
func TestFollowLostOnUnreachableNode(t *testing.T) {
	f := &fake{places: map[string][][]Copy{}, unreachable: errors.New("node h2: unreachable")}
	err := Follow(context.Background(), f, "web.1", time.Time{}, fast, (&record{}).emit)
	assert.Check(t, is.ErrorContains(err, "following web.1: it is on none of the nodes that answer"))
	assert.Check(t, is.ErrorContains(err, "h2: unreachable"))
}

// An agent that keeps refusing (a log driver that cannot be read) is an
// error once Settle has passed, not a loop.
func TestFollowRefused(t *testing.T) {
	f := &fake{places: map[string][][]Copy{"web.1": {{{Node: "h1", State: "running"}}}}}
	f.live = func(string, string, api.LogsQuery) (Stream, error) {
		return nil, errdefs.ErrNotImplemented.WithMessage(`configured logging driver does not support reading`)
	}
	err := Follow(context.Background(), f, "web.1", time.Time{}, fast, (&record{}).emit)
	assert.Check(t, errdefs.IsNotImplemented(err), "%v", err)
}

// Ctrl-C ends following without error.
func TestFollowCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fake{places: map[string][][]Copy{"web.1": {{{Node: "h1", State: "running"}}}}}
	f.live = func(string, string, api.LogsQuery) (Stream, error) {
		return &stream{lines: ticks(1, 3, "h1"), end: context.Canceled, at: func(i int) {
			if i == 3 {
				cancel()
			}
		}}, nil
	}
	var r record
	assert.NilError(t, Follow(ctx, f, "web.1", time.Time{}, fast, r.emit))
	assert.Check(t, is.Len(r.lines, 3))
}

// Show -f: the history first, then each replica followed from its own
// last line.
func TestShowFollow(t *testing.T) {
	f := &fake{places: map[string][][]Copy{"web.1": {
		{{Node: "h1", State: "running"}}, // collect
		{{Node: "h1", State: "running"}}, // follow
		{},
	}}}
	f.live = func(node, name string, q api.LogsQuery) (Stream, error) {
		if !q.Follow {
			return &stream{lines: ticks(1, 3, "h1"), end: io.EOF}, nil
		}
		assert.Check(t, q.Since.Equal(tick(3, "").Time), "follows from the last line shown")
		return &stream{lines: Window(ticks(1, 6, "h1"), q.Since, time.Time{}), end: io.EOF}, nil
	}
	opts := fast
	opts.Follow = true
	var r record
	assert.NilError(t, Show(context.Background(), f, []string{"web.1"}, opts, r.emit))
	assert.Check(t, is.Len(r.lines, 6), "%v", r.lines)
}
