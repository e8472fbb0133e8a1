package logstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
)

var t0 = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

// frame is one message of the engine's multiplexed stream (stdcopy).
func frame(stream byte, s string) []byte {
	h := make([]byte, 8)
	h[0] = stream
	binary.BigEndian.PutUint32(h[4:], uint32(len(s)))
	return append(h, s...)
}

func ts(i int) string { return t0.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano) }

func TestDemuxMultiplexed(t *testing.T) {
	var in bytes.Buffer
	in.Write(frame(1, ts(1)+" tick 1\n"))
	in.Write(frame(2, ts(2)+" oops\n"))
	// A long line comes as partial messages, each with its timestamp.
	in.Write(frame(1, ts(3)+" long "))
	in.Write(frame(1, ts(4)+" line\n"))
	in.Write(frame(1, ts(5)+" \n"))
	in.Write(frame(1, ts(6)+" last, no newline"))
	var got []api.LogLine
	assert.NilError(t, Demux(&in, false, func(l api.LogLine) error { got = append(got, l); return nil }))
	assert.DeepEqual(t, got, []api.LogLine{
		{Time: t0.Add(1 * time.Millisecond), Stream: "stdout", Text: "tick 1"},
		{Time: t0.Add(2 * time.Millisecond), Stream: "stderr", Text: "oops"},
		{Time: t0.Add(3 * time.Millisecond), Stream: "stdout", Text: "long line"},
		{Time: t0.Add(5 * time.Millisecond), Stream: "stdout", Text: ""},
		{Time: t0.Add(6 * time.Millisecond), Stream: "stdout", Text: "last, no newline"},
	})
}

func TestDemuxTTY(t *testing.T) {
	in := strings.NewReader(ts(1) + " a\r\n" + ts(2) + " b\r\n")
	var got []api.LogLine
	assert.NilError(t, Demux(in, true, func(l api.LogLine) error { got = append(got, l); return nil }))
	assert.DeepEqual(t, got, []api.LogLine{
		{Time: t0.Add(1 * time.Millisecond), Stream: "stdout", Text: "a"},
		{Time: t0.Add(2 * time.Millisecond), Stream: "stdout", Text: "b"},
	})
}

// fakeEngine serves one container's log.
type fakeEngine struct {
	client.APIClient
	id   string
	log  []byte
	tail string
}

func (e *fakeEngine) ContainerInspect(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	if id != e.id {
		return client.ContainerInspectResult{}, errdefs.ErrNotFound.WithMessage("no such container")
	}
	return client.ContainerInspectResult{Container: container.InspectResponse{ID: id, Config: &container.Config{}}}, nil
}

func (e *fakeEngine) ContainerLogs(_ context.Context, id string, o client.ContainerLogsOptions) (client.ContainerLogsResult, error) {
	if id != e.id {
		return nil, errdefs.ErrNotFound.WithMessage("no such container")
	}
	e.tail = o.Tail
	return io.NopCloser(bytes.NewReader(e.log)), nil
}

func engineWith(id string, from, to int) *fakeEngine {
	e := &fakeEngine{id: id}
	for i := from; i <= to; i++ {
		e.log = append(e.log, frame(1, fmt.Sprintf("%s tick %d\n", ts(i), i))...)
	}
	return e
}

func texts(lines []api.LogLine) []string {
	var out []string
	for _, l := range lines {
		out = append(out, l.Text)
	}
	return out
}

func TestKeepReadDrop(t *testing.T) {
	ctx := context.Background()
	s := &Store{Dir: filepath.Join(t.TempDir(), "logs"), Node: "h1"}
	assert.NilError(t, s.Keep(ctx, engineWith("c1", 1, 3), "c1", "web.1"))
	assert.NilError(t, s.Keep(ctx, engineWith("c2", 10, 11), "c2", "web.1"))
	// A removal tried again keeps nothing twice.
	assert.NilError(t, s.Keep(ctx, engineWith("c2", 10, 11), "c2", "web.1"))
	assert.NilError(t, s.Keep(ctx, engineWith("c3", 5, 5), "c3", "web.2"))

	got, err := s.Read("web.1", api.LogsQuery{})
	assert.NilError(t, err)
	assert.DeepEqual(t, texts(got), []string{"tick 1", "tick 2", "tick 3", "tick 10", "tick 11"})
	assert.Check(t, is.Equal(got[0].Node, "h1"))
	assert.Check(t, is.Equal(got[0].Stream, "stdout"))

	got, err = s.Read("web.1", api.LogsQuery{Since: t0.Add(2 * time.Millisecond), Until: t0.Add(10 * time.Millisecond)})
	assert.NilError(t, err)
	assert.DeepEqual(t, texts(got), []string{"tick 2", "tick 3", "tick 10"})
	got, err = s.Read("web.1", api.LogsQuery{Tail: 2})
	assert.NilError(t, err)
	assert.DeepEqual(t, texts(got), []string{"tick 10", "tick 11"})

	// A name with no parts has none; one that is no name is refused.
	got, err = s.Read("db.1", api.LogsQuery{})
	assert.NilError(t, err)
	assert.Check(t, is.Len(got, 0))
	for _, bad := range []string{"../x", "..", "a/b", "", ".hidden", "web.1@x"} {
		_, err := s.Read(bad, api.LogsQuery{})
		assert.Check(t, errdefs.IsInvalidArgument(err), bad)
		assert.Check(t, errdefs.IsInvalidArgument(s.Drop(bad)), bad)
		assert.Check(t, errdefs.IsInvalidArgument(s.Keep(ctx, engineWith("c9", 1, 1), "c9", bad)), bad)
	}

	assert.NilError(t, s.Drop("web.1"))
	got, err = s.Read("web.1", api.LogsQuery{})
	assert.NilError(t, err)
	assert.Check(t, is.Len(got, 0))
	got, err = s.Read("web.2", api.LogsQuery{})
	assert.NilError(t, err)
	assert.DeepEqual(t, texts(got), []string{"tick 5"})

	// The part records its container and node.
	entries, err := os.ReadDir(s.Dir)
	assert.NilError(t, err)
	assert.Assert(t, is.Len(entries, 1))
	h, err := readHeader(filepath.Join(s.Dir, entries[0].Name()))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(h.Container, "web.2"))
	assert.Check(t, is.Equal(h.Node, "h1"))
}

func TestKeepIsBounded(t *testing.T) {
	defer func(n, total int64) { MaxPerName, MaxTotal = n, total }(MaxPerName, MaxTotal)
	MaxPerName, MaxTotal = 2000, 5000
	ctx := context.Background()
	s := &Store{Dir: t.TempDir(), Node: "h1"}
	e := engineWith("c1", 1, 100)
	assert.NilError(t, s.Keep(ctx, e, "c1", "web.1"))
	assert.Check(t, is.Equal(e.tail, fmt.Sprint(keepTail)), "the engine reads from the end")
	got, err := s.Read("web.1", api.LogsQuery{})
	assert.NilError(t, err)
	assert.Check(t, len(got) > 5 && len(got) < 100, "%d lines", len(got))
	assert.Check(t, is.Equal(got[len(got)-1].Text, "tick 100"), "the newest lines stay")

	// A newer part of the name cuts the older: the newest bytes stay.
	assert.NilError(t, s.Keep(ctx, engineWith("c2", 200, 210), "c2", "web.1"))
	got, err = s.Read("web.1", api.LogsQuery{})
	assert.NilError(t, err)
	assert.Check(t, is.Equal(got[len(got)-1].Text, "tick 210"))
	assert.Check(t, is.Equal(got[len(got)-12].Text, "tick 100"))
	assert.Check(t, sizeOf(t, s.Dir) <= MaxPerName, "%d bytes", sizeOf(t, s.Dir))

	// Other names fill the node: the oldest parts go first.
	for i := range 5 {
		assert.NilError(t, s.Keep(ctx, engineWith(fmt.Sprint("d", i), 1, 100), fmt.Sprint("d", i), fmt.Sprint("db.", i)))
	}
	assert.Check(t, sizeOf(t, s.Dir) <= MaxTotal, "%d bytes", sizeOf(t, s.Dir))
	got, err = s.Read("web.1", api.LogsQuery{})
	assert.NilError(t, err)
	assert.Check(t, is.Len(got, 0))
	got, err = s.Read("db.4", api.LogsQuery{})
	assert.NilError(t, err)
	assert.Check(t, len(got) > 0)
}

func sizeOf(t *testing.T, dir string) int64 {
	entries, err := os.ReadDir(dir)
	assert.NilError(t, err)
	var n int64
	for _, e := range entries {
		info, err := e.Info()
		assert.NilError(t, err)
		n += info.Size()
	}
	return n
}

func TestNilStore(t *testing.T) {
	var s *Store
	assert.NilError(t, s.Keep(context.Background(), nil, "c1", "web.1"))
	got, err := s.Read("web.1", api.LogsQuery{})
	assert.NilError(t, err)
	assert.Check(t, is.Len(got, 0))
	assert.NilError(t, s.Drop("web.1"))
}
