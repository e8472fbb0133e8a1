package logstore

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
)

// OpenEngine opens a container's log at its engine, with timestamps, as q
// bounds it. Refusals (a log driver that cannot be read) come here, before
// anything is streamed.
func OpenEngine(ctx context.Context, engine client.APIClient, id string, q api.LogsQuery) (io.ReadCloser, error) {
	opts := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true, Follow: q.Follow}
	if !q.Since.IsZero() {
		opts.Since = q.Since.UTC().Format(time.RFC3339Nano)
	}
	if !q.Until.IsZero() {
		opts.Until = q.Until.UTC().Format(time.RFC3339Nano)
	}
	if q.Tail > 0 {
		opts.Tail = strconv.Itoa(q.Tail)
	}
	r, err := engine.ContainerLogs(ctx, id, opts)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	return r, nil
}

// Demux reads an engine's log with timestamps into lines: stdout and
// stderr multiplexed (stdcopy), or one raw stream, all stdout, for a
// container with a terminal (tty).
func Demux(r io.Reader, tty bool, emit func(api.LogLine) error) error {
	out := &lineWriter{stream: api.StreamStdout, emit: emit, tty: tty}
	if tty {
		_, err := io.Copy(out, bufio.NewReaderSize(r, 64<<10))
		if err == nil {
			err = out.flush()
		}
		return err
	}
	errw := &lineWriter{stream: api.StreamStderr, emit: emit}
	if _, err := stdcopy.StdCopy(out, errw, r); err != nil {
		return err
	}
	if err := out.flush(); err != nil {
		return err
	}
	return errw.flush()
}

// lineWriter cuts one stream of "TIMESTAMP TEXT\n" into lines.
type lineWriter struct {
	stream string
	emit   func(api.LogLine) error
	tty    bool
	buf    []byte
	last   time.Time
}

// Write takes what the engine sent. Without a terminal each write is one
// of the engine's messages (stdcopy writes frame by frame): a line longer
// than the engine's buffer comes as several, each with its own timestamp
// and only the last with a newline; the later timestamps are dropped so
// that the line reads as the container wrote it.
func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	if !w.tty && len(w.buf) > 0 {
		if _, rest, ok := cutTime(p); ok {
			p = rest
		}
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) > maxLine {
				if err := w.flush(); err != nil {
					return 0, err
				}
			}
			break
		}
		w.buf = append(w.buf, p[:i]...)
		p = p[i+1:]
		if err := w.flush(); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// flush emits the line held, if any.
func (w *lineWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	line := w.buf
	w.buf = w.buf[:0]
	if w.tty {
		line = bytes.TrimSuffix(line, []byte("\r"))
	}
	if len(line) > maxLine {
		line = line[:maxLine]
	}
	at, text, ok := cutTime(line)
	if !ok {
		// Not the engine's form (the rest of a line cut at maxLine): keep
		// the text, merged as the line before it.
		at, text = w.last, line
	}
	w.last = at
	return w.emit(api.LogLine{Time: at, Stream: w.stream, Text: string(text)})
}

// cutTime takes the engine's "RFC3339Nano " prefix off a line.
func cutTime(b []byte) (time.Time, []byte, bool) {
	i := bytes.IndexByte(b, ' ')
	if i < len("2006-01-02T15:04:05Z") || i > len(time.RFC3339Nano)+8 {
		return time.Time{}, b, false
	}
	s := string(b[:i])
	if !strings.Contains(s, "T") {
		return time.Time{}, b, false
	}
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, b, false
	}
	return at, b[i+1:], true
}
