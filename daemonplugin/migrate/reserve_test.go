package migrate

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The first large image is written into the reserve, which keeps its
// pages: the result is the stream's file (holes read back as zeros, the
// size exact), and the reserve is gone; later files are made as usual.
func TestExtractWritesIntoReserve(t *testing.T) {
	l := newLayout(t, t.TempDir())
	cp := filepath.Join(l.target, "cp")
	reserve := filepath.Join(cp, reserveName)
	f, err := os.Create(reserve)
	assert.NilError(t, err)
	assert.NilError(t, unix.Fallocate(int(f.Fd()), 0, 0, 8<<20))
	assert.NilError(t, f.Close())
	var st unix.Stat_t
	assert.NilError(t, unix.Stat(reserve, &st))
	ino := st.Ino

	// Data, a block of zeros (a hole the extractor skips), data.
	pages := append(append(bytes.Repeat([]byte("p"), 1<<20), make([]byte, holeBlock)...), bytes.Repeat([]byte("q"), 5000)...)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range []struct {
		name string
		data []byte
	}{{"checkpoint/pages-1.img", pages}, {"checkpoint/pages-2.img", bytes.Repeat([]byte("r"), 2<<20)}, {"checkpoint/core.img", []byte("core")}} {
		assert.NilError(t, tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(e.data))}))
		_, err := tw.Write(e.data)
		assert.NilError(t, err)
	}
	assert.NilError(t, tw.Close())

	x := &extractor{limit: 64 << 20, dir: sections(l.target), noChown: os.Geteuid() != 0, reserveSection: "checkpoint/"}
	assert.NilError(t, x.extract(&buf))

	got, err := os.ReadFile(filepath.Join(cp, "pages-1.img"))
	assert.NilError(t, err)
	assert.Check(t, bytes.Equal(got, pages), "pages-1.img differs from the stream's")
	assert.NilError(t, unix.Stat(filepath.Join(cp, "pages-1.img"), &st))
	assert.Check(t, is.Equal(st.Ino, ino), "pages-1.img is not the reserve's inode")
	assert.NilError(t, unix.Stat(filepath.Join(cp, "pages-2.img"), &st))
	assert.Check(t, st.Ino != ino)
	assert.Check(t, is.Equal(st.Size, int64(2<<20)))
	_, err = os.Stat(reserve)
	assert.Check(t, os.IsNotExist(err), "the reserve is still there")
}

// A stream may not name the reserve (a FIFO there would hang the write
// into it).
func TestExtractRefusesReserveName(t *testing.T) {
	l := newLayout(t, t.TempDir())
	raw := tarStream(t, &tar.Header{Name: "checkpoint/" + reserveName, Typeflag: tar.TypeFifo, Mode: 0o600})
	x := &extractor{limit: 1 << 20, dir: sections(l.target), noChown: os.Geteuid() != 0, reserveSection: "checkpoint/"}
	err := x.extract(raw)
	assert.Check(t, errors.Is(err, errUnsafe), "%v", err)
}
