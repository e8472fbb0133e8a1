package migrate

import (
	"archive/tar"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	units "github.com/docker/go-units"

	"github.com/docker-fleet/fleet/shared/api"
)

// stallTimeout is how long a transfer may make no progress before it is
// given up (a cut link stalls rather than fails); restoreTimeout how long,
// once every byte is sent, the destination may take to restore; twinWait
// how long the destination may take to make the twin before the freeze.
var (
	stallTimeout   = 15 * time.Second
	restoreTimeout = 45 * time.Second
	twinWait       = 2 * time.Minute
)

// errAbandoned ends a stream opened for a migration that then did not
// freeze its container.
var errAbandoned = errors.New("the migration ended before its container was frozen")

// stream is the way of a container to its destination. It is opened
// before the freeze: the destination makes the twin while the source
// still runs, and asks for the body (HTTP's 100 Continue) once the twin
// is ready. The body, the writable layer, volumes and CRIU images, flows
// once begin is called, after the freeze.
type stream struct {
	o     *outgoing
	pw    *io.PipeWriter
	sum   hash.Hash
	ready chan struct{} // closed when the destination asks for the body
	start chan string   // the images directory; closed without one: abandoned
	done  chan struct{} // the destination answered, or the request failed
	once  sync.Once

	sent    atomic.Int64
	allSent atomic.Bool
	cause   atomic.Pointer[error] // why the watchdog cut the request
	cancel  context.CancelFunc
	got     api.ReceiveResult
	err     error
}

// openStream starts the receive request; nothing is sent until begin.
func (m *Migrator) openStream(ctx context.Context, o *outgoing) *stream {
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	s := &stream{o: o, pw: pw, sum: newStreamSum(), ready: make(chan struct{}), start: make(chan string, 1),
		done: make(chan struct{}), cancel: cancel}
	go s.write(ctx, m)
	body := &firstRead{r: pr, first: func() { close(s.ready) }}
	go func() {
		defer cancel()
		defer close(s.done)
		s.got, s.err = o.peer.Receive(ctx, o.hdr, body, func() string { return hex.EncodeToString(s.sum.Sum(nil)) })
		if c := s.cause.Load(); s.err != nil && c != nil {
			s.err = *c
		}
		_ = pr.CloseWithError(errAbandoned) // unblocks the writer, if the request failed first
	}()
	return s
}

// awaitReady waits until the destination has the twin and asks for the
// body. An error means the destination refused or failed: nothing froze.
func (s *stream) awaitReady() error {
	t := time.NewTimer(twinWait)
	defer t.Stop()
	select {
	case <-s.ready:
		return nil
	case <-s.done:
		s.abandon()
		if s.err == nil {
			return fmt.Errorf("the destination answered before the stream began")
		}
		return s.err
	case <-t.C:
		s.abandon()
		return fmt.Errorf("the destination did not make the twin within %s", twinWait)
	}
}

// abandon ends a stream that will not begin, and waits until the request
// has ended: the destination, whose stream fails, then removes its twin
// on its own (a moment later). A request still waiting for the
// destination to ask for the body is cut: closing the body would not end
// that wait.
func (s *stream) abandon() {
	s.once.Do(func() { close(s.start) })
	select {
	case <-s.ready:
	default:
		s.cancel()
	}
	<-s.done
}

// begin sends the frozen container whose images are in cpDir and waits
// for the destination's answer: the bytes sent and the restored copy.
func (s *stream) begin(cpDir string) (int64, api.ReceiveResult, error) {
	s.once.Do(func() { s.start <- cpDir; close(s.start) })
	s.watch(s.expected(cpDir))
	return s.sent.Load(), s.got, s.err
}

// expected is what the stream should carry in all, for its progress: the
// trees as measured before the freeze, the CRIU images in cpDir (a few
// files, measured while the writer already streams) and the tar's end;
// 0 if the images cannot be measured.
func (s *stream) expected(cpDir string) int64 {
	st, err := scanTree(api.SectionCheckpoint, cpDir)
	if err != nil {
		return 0
	}
	return s.o.files + st.Bytes + 2*blockSize
}

// write writes the container into the pipe once begin gives the images.
func (s *stream) write(ctx context.Context, m *Migrator) {
	cpDir, ok := <-s.start
	if !ok {
		s.pw.CloseWithError(errAbandoned)
		return
	}
	tw := tar.NewWriter(io.MultiWriter(s.pw, s.sum, counter{&s.sent}))
	err := m.writeContainer(ctx, tw, s.o.trees, cpDir)
	if err == nil {
		err = tw.Close()
	}
	// Set before the pipe ends: the reader's EOF orders it before the
	// destination's answer.
	s.o.phases.LastByte = s.o.since()
	s.pw.CloseWithError(err)
	s.allSent.Store(err == nil)
}

// watch reports the transfer's progress (of total, expected) until the
// destination answers, and cuts the request when the stream stalls or the
// restore takes too long.
func (s *stream) watch(total int64) {
	last, lastAt, t0 := int64(0), time.Now(), time.Now()
	restoring := false
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	cut := func(err error) {
		s.cause.Store(&err)
		s.cancel()
	}
	for {
		select {
		case <-s.done:
			return
		case <-tick.C:
		}
		n := s.sent.Load()
		if s.allSent.Load() {
			if !restoring {
				// The last count (all of it: the total is known now),
				// then the destination's turn.
				restoring = true
				s.o.emit(api.MigrateEvent{Phase: api.PhaseTransfer, Bytes: n, Total: n,
					Message: fmt.Sprintf("%s sent", units.HumanSize(float64(n)))})
				s.o.emit(api.MigrateEvent{Phase: api.PhaseRestore, Message: "restoring on " + s.o.req.To})
			}
			// No bytes flow while the destination restores: a slow
			// restore is not a cut link.
			if time.Since(lastAt) > restoreTimeout {
				cut(fmt.Errorf("the destination did not answer within %s of the last byte", restoreTimeout))
			}
			continue
		}
		if n != last {
			last, lastAt = n, time.Now()
			rate := float64(n) / time.Since(t0).Seconds()
			s.o.emit(api.MigrateEvent{Phase: api.PhaseTransfer, Bytes: n, Total: total,
				Message: fmt.Sprintf("%s sent (%s/s)", units.HumanSize(float64(n)), units.HumanSize(rate))})
		} else if time.Since(lastAt) > stallTimeout {
			cut(fmt.Errorf("the transfer stalled for %s (is the link to the destination cut?)", stallTimeout))
		}
	}
}

// firstRead calls first at the first read of r: the HTTP client reads a
// body that expects 100 Continue only once the server asked for it.
type firstRead struct {
	r     io.Reader
	first func()
	once  sync.Once
}

func (f *firstRead) Read(p []byte) (int, error) {
	f.once.Do(f.first)
	return f.r.Read(p)
}

type counter struct{ n *atomic.Int64 }

func (c counter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

// writeContainer writes the writable layer, the named volumes and the CRIU
// images, each in its section.
func (m *Migrator) writeContainer(ctx context.Context, tw *tar.Writer, trees []tree, cpDir string) error {
	for i, t := range append(trees, tree{api.SectionCheckpoint, cpDir}) {
		if i == 1 {
			if err := m.fault(ctx, "source:transfer"); err != nil {
				return err
			}
		}
		if err := writeTree(tw, t.prefix, t.dir); err != nil {
			return fmt.Errorf("%s: %w", strings.TrimSuffix(t.prefix, "/"), err)
		}
	}
	return ctx.Err()
}
