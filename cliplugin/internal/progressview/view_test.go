package progressview

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/docker/cli/cli/streams"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
)

// noTTY is a descriptor no terminal answers on: jsonmessage then assumes
// 200 columns, whatever runs the test.
const noTTY = ^uintptr(0)

// clock is a fake time that the test moves on.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// migration plays a migration of 100MB (of 100MB expected) to v, the
// clock advancing between events; the transfer sends tenths of it,
// every 600ms.
func migration(v *View, c *clock, key string) {
	on := v.Migration(key)
	step := func(d time.Duration, ev api.MigrateEvent) { c.t = c.t.Add(d); on(ev) }
	step(0, api.MigrateEvent{Phase: api.PhaseStart, Message: "migration 3f2a of web.1 from h2 to h3"})
	step(100*time.Millisecond, api.MigrateEvent{Phase: api.PhasePrepare, Message: "asking h3"})
	step(100*time.Millisecond, api.MigrateEvent{Phase: api.PhaseCheckpoint, Message: "checkpointing web.1"})
	step(400*time.Millisecond, api.MigrateEvent{Phase: api.PhaseCheckpoint, Message: "checkpointed in 0.40s"})
	step(10*time.Millisecond, api.MigrateEvent{Phase: api.PhaseTransfer, Message: "streaming to h3"})
	for i := int64(1); i <= 10; i++ {
		step(600*time.Millisecond, api.MigrateEvent{Phase: api.PhaseTransfer, Bytes: i * 10e6, Total: 100e6, Message: "sent"})
	}
	step(100*time.Millisecond, api.MigrateEvent{Phase: api.PhaseRestore, Message: "restoring on h3"})
	step(500*time.Millisecond, api.MigrateEvent{Phase: api.PhaseDone, Result: &api.MigrateResult{
		Container: "web.1", From: "h2", To: "h3", Downtime: 1.25, Total: 7.5, Bytes: 100e6}})
}

func newTest(out *bytes.Buffer, term bool, width int) (*View, *clock) {
	c := &clock{t: time.Now()}
	v := start(out, noTTY, term, width)
	v.now = c.now
	return v, c
}

func TestPlainLines(t *testing.T) {
	var out bytes.Buffer
	v, c := newTest(&out, false, 0)
	migration(v, c, "")
	assert.NilError(t, v.Close())
	assert.Check(t, !strings.Contains(out.String(), "\x1b"), "escape codes without a terminal:\n%q", out.String())
	// One line a phase change; the transfer every tenth (600ms apart, so
	// never for the time alone), the last one whole.
	assert.Check(t, is.Equal(out.String(), `start: migration 3f2a of web.1 from h2 to h3
prepare: asking h3
checkpoint: checkpointing web.1
checkpoint: checkpointed in 0.40s
transfer: streaming to h3
transfer: 10MB of 100MB sent (10%, 16.67MB/s)
transfer: 20MB of 100MB sent (20%, 16.67MB/s)
transfer: 30MB of 100MB sent (30%, 16.67MB/s)
transfer: 40MB of 100MB sent (40%, 16.67MB/s)
transfer: 50MB of 100MB sent (50%, 16.67MB/s)
transfer: 60MB of 100MB sent (60%, 16.67MB/s)
transfer: 70MB of 100MB sent (70%, 16.67MB/s)
transfer: 80MB of 100MB sent (80%, 16.67MB/s)
transfer: 90MB of 100MB sent (90%, 16.67MB/s)
transfer: 100MB of 100MB sent (100%, 16.67MB/s)
restore: restoring on h3
`))
}

// TestPlainThrottled: without a total (an older agent), a transfer prints
// every few seconds and its end.
func TestPlainThrottled(t *testing.T) {
	var out bytes.Buffer
	v, c := newTest(&out, false, 0)
	on := v.Migration("")
	on(api.MigrateEvent{Phase: api.PhaseTransfer, Message: "streaming to h3"})
	for i := int64(1); i <= 24; i++ {
		c.t = c.t.Add(500 * time.Millisecond)
		on(api.MigrateEvent{Phase: api.PhaseTransfer, Bytes: i * 1e6, Message: "sent"})
	}
	on(api.MigrateEvent{Phase: api.PhaseDone, Result: &api.MigrateResult{To: "h3", Bytes: 25e6}})
	assert.NilError(t, v.Close())
	assert.Check(t, is.Equal(out.String(), `transfer: streaming to h3
transfer: 1MB sent (2MB/s)
transfer: 11MB sent (2MB/s)
transfer: 21MB sent (2MB/s)
transfer: 25MB sent in 12.0s
`))
}

func TestTerminalBar(t *testing.T) {
	var out bytes.Buffer
	v, c := newTest(&out, true, 120)
	migration(v, c, "")
	assert.NilError(t, v.Close())
	s := out.String()
	// jsonmessage's in-place lines: erase the line, go up and down.
	assert.Check(t, is.Contains(s, "\x1b[2K"))
	assert.Check(t, is.Contains(s, "\x1b[1A"))
	// A bar while it runs, with its rate; full at the end.
	assert.Check(t, is.Contains(s, "transfer: sending at 16.67MB/s [====="))
	assert.Check(t, is.Contains(s, ">                         ]"), "a bar half way:\n%q", s)
	assert.Check(t, is.Contains(s, "transfer: sent in 6.1s [==================================================>]    100MB/100MB"))
	// Phases under way end as git ends them.
	assert.Check(t, is.Contains(s, "prepare: asking h3, done"))
	assert.Check(t, is.Contains(s, "restore: restoring on h3, done"))
	// The start line stays, a line of its own.
	assert.Check(t, strings.HasPrefix(s, "start: migration 3f2a of web.1 from h2 to h3\n"), "%q", s)
	// One screen line a phase: start, prepare, checkpoint, transfer,
	// restore.
	assert.Check(t, is.Equal(strings.Count(s, "\n"), 5), "%q", s)
}

// TestTerminalLongMessage: a message too long for the terminal's line
// goes on a line of its own, whole; a bar's line is cut to fit.
func TestTerminalLongMessage(t *testing.T) {
	var out bytes.Buffer
	v, c := newTest(&out, true, 120)
	on := v.Migration("a-container-with-a-rather-long-name.12")
	on(api.MigrateEvent{Phase: api.PhaseTransfer, Message: "streaming to h3"})
	c.t = c.t.Add(time.Second)
	on(api.MigrateEvent{Phase: api.PhaseTransfer, Bytes: 5e6, Total: 10e6})
	v.Migration("")(api.MigrateEvent{Phase: api.PhaseTransfer, Message: "streaming to h3"})
	long := "web.1 runs on h3, fenced until its agent learns that the migration is committed (no route to host); the agents keep trying"
	v.Migration("")(api.MigrateEvent{Phase: api.PhaseRestore, Message: long})
	assert.NilError(t, v.Close())
	s := out.String()
	assert.Check(t, is.Contains(s, "\x1b[1Brestore: "+long+"\n"))
	assert.Check(t, is.Regexp(`a-container-with-a-rather-long-name\.12: tr\S*… \[=+>`, s))
	for _, l := range strings.Split(s, "\r") {
		if strings.Contains(l, "[=") {
			assert.Check(t, len(l) < 120, "%q", l)
		}
	}
}

// TestSeveral: leave's migrations, a line each, named after the
// container.
func TestSeveral(t *testing.T) {
	var plain bytes.Buffer
	v, c := newTest(&plain, false, 0)
	migration(v, c, "web.1")
	v.Migration("db.1")(api.MigrateEvent{Phase: api.PhaseDone, Error: "db.1 cannot migrate: io_uring"})
	_, _ = v.Write([]byte("h2: leaving the swarm\n"))
	assert.NilError(t, v.Close())
	s := plain.String()
	assert.Check(t, is.Contains(s, "web.1: prepare: asking h3\n"))
	assert.Check(t, is.Contains(s, "web.1: transfer: 50MB of 100MB sent (50%, 16.67MB/s)\n"))
	assert.Check(t, is.Contains(s, "web.1: migrated to h3, downtime 1.25s\n"))
	assert.Check(t, is.Contains(s, "db.1: failed: db.1 cannot migrate: io_uring\nh2: leaving the swarm\n"))

	var tty bytes.Buffer
	v, c = newTest(&tty, true, 120)
	migration(v, c, "web.1")
	migration(v, c, "api.1")
	assert.NilError(t, v.Close())
	s = tty.String()
	assert.Check(t, is.Contains(s, "web.1: transfer: sending at 16.67MB/s [===="))
	assert.Check(t, is.Contains(s, "api.1: migrated to h3, downtime 1.25s"))
	// A line each, updated in place.
	assert.Check(t, is.Equal(strings.Count(s, "\n"), 2), "%q", s)
}

// TestNew: docker's stream says whether it is a terminal.
func TestNew(t *testing.T) {
	var buf bytes.Buffer
	out := streams.NewOut(&buf)
	v := New(out)
	assert.Check(t, !v.term)
	v.Migration("")(api.MigrateEvent{Phase: api.PhasePrepare, Message: "asking h3"})
	assert.NilError(t, v.Close())
	assert.Check(t, is.Equal(buf.String(), "prepare: asking h3\n"))
}
