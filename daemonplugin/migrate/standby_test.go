package migrate

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
)

func standbyHeader(id string) api.ReceiveHeader {
	return api.ReceiveHeader{ID: id, Name: "web.2", From: "h3", Checkpoint: checkpointName, Network: "fleet", ImagesDir: true,
		IP: "10.0.1.4", Config: container.Config{Labels: map[string]string{labels.Service: "web"}}}
}

func crc(s string) string {
	h := newStreamSum()
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}

// TestStandbyCopies: a node keeps only checkpoints the leader announced,
// from the node announced, whole (a corrupt one leaves the older copy),
// the newest replacing the older; a drop forgets it.
func TestStandbyCopies(t *testing.T) {
	ctx := context.Background()
	m := &Migrator{Node: "h1"}
	m.Standby.Dir = t.TempDir()
	receive := func(from, id, body, sum string) error {
		return m.StandbyReceive(ctx, from, standbyHeader(id), strings.NewReader(body), func() string { return sum })
	}

	err := receive("h3", "aaaaaaaaaaaaaaaa", "first", crc("first"))
	assert.Check(t, errdefs.IsPermissionDenied(err), "not announced: %v", err)
	_, err = m.StandbyExpect(ctx, api.StandbyExpect{Container: "../etc", From: "h3", Network: "fleet"})
	assert.Check(t, errdefs.IsInvalidArgument(err), "a name that is no replica's never becomes a directory")
	_, err = m.StandbyExpect(ctx, api.StandbyExpect{Container: "web.2", From: "h3", Network: "fleet"})
	assert.NilError(t, err)
	err = receive("h2", "aaaaaaaaaaaaaaaa", "first", crc("first"))
	assert.Check(t, errdefs.IsPermissionDenied(err), "announced from h3, not h2: %v", err)
	assert.Check(t, is.Len(m.Standbys(), 0))

	assert.NilError(t, receive("h3", "aaaaaaaaaaaaaaaa", "first", crc("first")))
	got := m.Standbys()
	assert.Assert(t, is.Len(got, 1))
	assert.Check(t, is.Equal(got[0].Container, "web.2"))
	assert.Check(t, is.Equal(got[0].From, "h3"))
	assert.Check(t, is.Equal(got[0].Bytes, int64(len("first"))))

	err = receive("h3", "bbbbbbbbbbbbbbbb", "second", crc("tampered"))
	assert.Check(t, errdefs.IsInvalidArgument(err), "corrupt: %v", err)
	meta, stream, err := m.Standby.load("web.2")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(meta.Header.ID, "aaaaaaaaaaaaaaaa"), "the older copy stays whole")
	b, err := os.ReadFile(stream)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(b), "first"))

	assert.NilError(t, receive("h3", "cccccccccccccccc", "third", crc("third")))
	meta, stream, err = m.Standby.load("web.2")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(meta.Header.ID, "cccccccccccccccc"))
	b, _ = os.ReadFile(stream)
	assert.Check(t, is.Equal(string(b), "third"))
	left, _ := os.ReadDir(filepath.Join(m.Standby.Dir, "web.2"))
	assert.Check(t, is.Len(left, 1), "no partial or older copy left: %v", left)

	// A header that would make the copy anything but the announced
	// container is refused.
	evil := standbyHeader("dddddddddddddddd")
	evil.Network = "host"
	err = m.StandbyReceive(ctx, "h3", evil, strings.NewReader("x"), func() string { return crc("x") })
	assert.Check(t, errdefs.IsPermissionDenied(err), "%v", err)

	_, err = m.StandbyDrop(ctx, api.StandbyDrop{Container: "web.2"})
	assert.NilError(t, err)
	assert.Check(t, is.Len(m.Standbys(), 0))
	err = receive("h3", "eeeeeeeeeeeeeeee", "late", crc("late"))
	assert.Check(t, errdefs.IsPermissionDenied(err), "dropped, no longer expected: %v", err)
}
