package journal

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestPutGetSetRemove(t *testing.T) {
	j, err := Open(filepath.Join(t.TempDir(), "j"))
	assert.NilError(t, err)
	e := Entry{ID: "abcdef0123", Role: Source, State: Freezing, Container: "web.1", Peer: "h3",
		Source: &SourceRecord{ContainerID: "c1", Pid: 42, Dirs: []string{"/dev/shm/x"}}}
	assert.NilError(t, j.Put(e))
	got, err := j.Get(e.ID)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(got.State, Freezing))
	assert.Check(t, is.Equal(got.Source.Pid, 42))

	assert.NilError(t, j.Set(e.ID, Committed))
	got, err = j.Get(e.ID)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(got.State, Committed))
	assert.Check(t, is.Equal(got.Source.ContainerID, "c1"), "Set keeps the rest")

	list, errs := j.List()
	assert.Check(t, is.Len(errs, 0))
	assert.Check(t, is.Len(list, 1))

	assert.NilError(t, j.Remove(e.ID))
	_, err = j.Get(e.ID)
	assert.Check(t, errors.Is(err, os.ErrNotExist))
	assert.NilError(t, j.Remove(e.ID), "removing twice is fine")
}

func TestBadIDRefused(t *testing.T) {
	j, err := Open(t.TempDir())
	assert.NilError(t, err)
	for _, id := range []string{"", "../../etc/passwd", "ABCDEFGH12", "a/b/c/d/e/f"} {
		assert.Check(t, j.Put(Entry{ID: id}) != nil, "id %q", id)
		_, err := j.Get(id)
		assert.Check(t, err != nil, "id %q", id)
	}
}

func TestListSkipsBadAndTemporary(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir)
	assert.NilError(t, err)
	assert.NilError(t, j.Put(Entry{ID: "aaaaaaaa01", Role: Destination, State: Receiving}))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "bbbbbbbb02.json"), []byte("{not json"), 0o600))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, ".tmp-cccccccc03-1"), []byte("{}"), 0o600))
	list, errs := j.List()
	assert.Check(t, is.Len(list, 1))
	assert.Check(t, is.Len(errs, 1))
	assert.Check(t, is.Equal(list[0].ID, "aaaaaaaa01"))
}

func TestOpenRemovesUnfinishedPuts(t *testing.T) {
	dir := t.TempDir()
	left := filepath.Join(dir, ".tmp-cccccccc03-1")
	assert.NilError(t, os.WriteFile(left, []byte("{}"), 0o600))
	kept := filepath.Join(dir, "aaaaaaaa01.json")
	assert.NilError(t, os.WriteFile(kept, []byte("{}"), 0o600))
	_, err := Open(dir)
	assert.NilError(t, err)
	_, err = os.Stat(left)
	assert.Check(t, os.IsNotExist(err), "the temporary file of a Put that never ended stays")
	_, err = os.Stat(kept)
	assert.Check(t, err)
}
