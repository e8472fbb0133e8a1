package migrate

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

var isRoot = os.Geteuid() == 0

// fileDesc is what a test compares of a file.
type fileDesc struct {
	Type     string
	Mode     uint32 // the 12 permission bits
	Uid, Gid uint32
	Size     int64
	Hash     string // of a regular file's contents
	Link     string
	Xattrs   map[string]string
	Mtime    time.Time
	Nlink    uint64
	Rdev     uint64
	Ino      uint64
}

// describe describes root and everything below it, by path relative to
// root ("." for root), without following symlinks. skip leaves out a path
// and what is below it.
func describe(t testing.TB, root string, skip func(rel string) bool) map[string]fileDesc {
	t.Helper()
	out := map[string]fileDesc{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if skip != nil && skip(rel) {
			if p == root {
				return nil
			}
			if st, _ := os.Lstat(p); st != nil && st.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		d := fileDesc{Type: typeName(st.Mode), Mode: st.Mode & 0o7777, Uid: st.Uid, Gid: st.Gid,
			Mtime: time.Unix(st.Mtim.Unix()), Nlink: st.Nlink, Rdev: st.Rdev, Ino: st.Ino, Xattrs: lxattrs(t, p)}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			d.Size, d.Hash = st.Size, hashFile(t, p)
		case unix.S_IFLNK:
			d.Link, _ = os.Readlink(p)
		}
		out[rel] = d
		return nil
	})
	assert.NilError(t, err)
	return out
}

func typeName(mode uint32) string {
	return map[uint32]string{unix.S_IFDIR: "dir", unix.S_IFREG: "file", unix.S_IFLNK: "symlink",
		unix.S_IFIFO: "fifo", unix.S_IFCHR: "char", unix.S_IFBLK: "block", unix.S_IFSOCK: "socket"}[mode&unix.S_IFMT]
}

func hashFile(t testing.TB, p string) string {
	f, err := os.Open(p)
	assert.NilError(t, err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	assert.NilError(t, err)
	return hex.EncodeToString(h.Sum(nil))
}

func lxattrs(t testing.TB, p string) map[string]string {
	list, err := xattrRead(func(b []byte) (int, error) { return unix.Llistxattr(p, b) })
	if errors.Is(err, unix.ENOTSUP) {
		return nil
	}
	assert.NilError(t, err)
	var out map[string]string
	for _, name := range splitNul(list) {
		v, err := xattrRead(func(b []byte) (int, error) { return unix.Lgetxattr(p, name, b) })
		assert.NilError(t, err)
		if out == nil {
			out = map[string]string{}
		}
		out[name] = string(v)
	}
	return out
}

// tempDir is t.TempDir that an unprivileged test can also remove when it
// holds read-only directories.
func tempDir(t testing.TB) string {
	dir := t.TempDir()
	t.Cleanup(func() { makeRemovable(dir) })
	return dir
}

func makeRemovable(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
}

// capNetBindService is a security.capability value (VFS_CAP_REVISION_2,
// effective, cap_net_bind_service permitted).
var capNetBindService = string([]byte{1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

// makeSourceTree makes a tree with every kind of entry and metadata the
// stream carries, and a socket it skips. The parts that need root are left
// out when the test is not root.
func makeSourceTree(t *testing.T, src string) {
	at := func(p string) string { return filepath.Join(src, p) }
	mkdir := func(p string, mode os.FileMode) {
		assert.NilError(t, os.Mkdir(at(p), 0o700))
		assert.NilError(t, os.Chmod(at(p), mode))
	}
	write := func(p, content string, mode os.FileMode) {
		assert.NilError(t, os.WriteFile(at(p), []byte(content), 0o600))
		assert.NilError(t, os.Chmod(at(p), mode))
	}
	chown := func(p string, id int) {
		if isRoot {
			assert.NilError(t, os.Lchown(at(p), id, id))
		}
	}
	setxattr := func(p, name, value string) {
		assert.NilError(t, unix.Lsetxattr(at(p), name, []byte(value), 0))
	}

	mkdir("files", 0o755)
	write("files/a", "alpha", 0o640)
	chown("files/a", 1000)
	write("files/b", "beta", 0o660)
	chown("files/b", 999)
	write("files/c", "gamma", 0o600)
	write("files/exe", "#!/bin/sh\n", 0o755)
	write("files/suid", "suid", 0o755)
	chown("files/suid", 1000) // before the mode: chown clears setuid
	assert.NilError(t, os.Chmod(at("files/suid"), 0o755|os.ModeSetuid))
	write("files/sgid", "sgid", 0o755)
	assert.NilError(t, os.Chmod(at("files/sgid"), 0o755|os.ModeSetgid))
	write("files/hard1", "shared", 0o644)
	assert.NilError(t, os.Link(at("files/hard1"), at("files/hard2")))
	// 64 MiB, of which 4 KiB in the middle are data.
	f, err := os.Create(at("files/sparse"))
	assert.NilError(t, err)
	_, err = f.WriteAt(bytes.Repeat([]byte("z"), 4096), 32<<20)
	assert.NilError(t, err)
	assert.NilError(t, f.Truncate(64<<20))
	assert.NilError(t, f.Close())
	assert.NilError(t, unix.Mkfifo(at("files/fifo"), 0o600))
	assert.NilError(t, os.Chmod(at("files/fifo"), 0o620))
	write("files/xattr", "with attributes", 0o644)
	setxattr("files/xattr", "user.foo", "bar")
	if isRoot {
		setxattr("files/xattr", "security.capability", capNetBindService)
	}
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	assert.NilError(t, err)
	assert.NilError(t, unix.Bind(sock, &unix.SockaddrUnix{Name: at("files/sock")}))
	unix.Close(sock)

	mkdir("links", 0o755)
	assert.NilError(t, os.Symlink("nowhere/at/all", at("links/dangling")))
	assert.NilError(t, os.Symlink("../files/a", at("links/rel")))
	assert.NilError(t, os.Symlink("/etc/passwd", at("links/abs")))
	chown("links/rel", 999)

	mkdir("empty", 0o750)
	mkdir("sticky", 0o777)
	assert.NilError(t, os.Chmod(at("sticky"), 0o777|os.ModeSticky))
	mkdir("shared", 0o775)
	chown("shared", 999)
	assert.NilError(t, os.Chmod(at("shared"), 0o775|os.ModeSetgid))
	mkdir("xattrdir", 0o700)
	setxattr("xattrdir", "user.dir", "yes")

	// An overlay layer's deletion marks: a whiteout, an opaque directory.
	mkdir("layer", 0o755)
	assert.NilError(t, unix.Mknod(at("layer/deleted"), unix.S_IFCHR, 0))
	assert.NilError(t, os.Chmod(at("layer/deleted"), 0))
	if isRoot {
		mkdir("layer/opaque", 0o755)
		setxattr("layer/opaque", overlayOpaque, "y")
	}

	mkdir("ro", 0o755)
	write("ro/inside", "read only", 0o444)
	assert.NilError(t, os.Chmod(at("ro"), 0o555))

	// Distinct times to the nanosecond, deepest first so that no later
	// change moves a directory's.
	var paths []string
	assert.NilError(t, filepath.WalkDir(src, func(p string, _ fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	}))
	for i := len(paths) - 1; i >= 0; i-- {
		mt := time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC).Add(time.Duration(i) * 1234567891)
		ts := []unix.Timespec{unix.NsecToTimespec(mt.Add(-time.Hour).UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
		assert.NilError(t, unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// sections maps the stream's sections to directories under target, as the
// destination does: rootfs, volumes/v, checkpoint; other volumes are
// unknown.
func sections(target string) func(section, name string) (string, error) {
	return func(section, name string) (string, error) {
		switch {
		case section == "rootfs":
			return filepath.Join(target, "rootfs"), nil
		case section == "checkpoint":
			return filepath.Join(target, "cp"), nil
		case section == "volumes" && name == "v":
			return filepath.Join(target, "vol-v"), nil
		}
		return "", fmt.Errorf("no volume %q here", name)
	}
}

func makeSections(t testing.TB, target string) {
	for _, d := range []string{"rootfs", "cp", "vol-v"} {
		assert.NilError(t, os.MkdirAll(filepath.Join(target, d), 0o755))
	}
}

func TestRoundTrip(t *testing.T) {
	src, vol := tempDir(t), tempDir(t)
	makeSourceTree(t, src)
	assert.NilError(t, os.WriteFile(filepath.Join(vol, "data"), []byte("volume data"), 0o600))
	if isRoot {
		assert.NilError(t, os.Chown(vol, 999, 999)) // a database's volume
	}
	assert.NilError(t, os.Chmod(vol, 0o700))
	want, wantVol := describe(t, src, nil), describe(t, vol, nil)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	assert.NilError(t, writeTree(tw, "rootfs/", src))
	assert.NilError(t, writeTree(tw, "volumes/v/", vol))
	assert.NilError(t, tw.Close())

	// The scan announces an upper bound of the stream, not far above it.
	s1, err := scanTree("rootfs/", src)
	assert.NilError(t, err)
	s2, err := scanTree("volumes/v/", vol)
	assert.NilError(t, err)
	announced, entries := s1.Bytes+s2.Bytes, s1.Entries+s2.Entries
	assert.Check(t, is.Equal(entries, countEntries(t, buf.Bytes())))
	assert.Check(t, int64(buf.Len()-1024) <= announced, "stream %d bytes, announced %d", buf.Len(), announced)
	assert.Check(t, announced <= int64(buf.Len())+entries*1536, "stream %d bytes, announced %d", buf.Len(), announced)

	dst := tempDir(t)
	makeSections(t, dst)
	// The modes must not depend on the umask.
	defer syscall.Umask(syscall.Umask(0o077))
	x := &extractor{limit: announced, dir: sections(dst), noChown: !isRoot}
	assert.NilError(t, x.extract(&buf))

	got, gotVol := describe(t, filepath.Join(dst, "rootfs"), nil), describe(t, filepath.Join(dst, "vol-v"), nil)
	_, sent := got["files/sock"]
	assert.Check(t, !sent, "a socket is not carried")
	delete(want, "files/sock")
	compareTrees(t, want, got)
	compareTrees(t, wantVol, gotVol)

	assert.Check(t, is.Equal(got["files/hard1"].Ino, got["files/hard2"].Ino), "hard links arrive as one inode")
	assert.Check(t, is.Equal(got["files/hard1"].Nlink, uint64(2)))
	var st unix.Stat_t
	assert.NilError(t, unix.Stat(filepath.Join(dst, "rootfs/files/sparse"), &st))
	assert.Check(t, st.Blocks*512 < 1<<20, "the sparse file takes %d bytes", st.Blocks*512)
	assert.Check(t, is.Equal(got["files/xattr"].Xattrs["user.foo"], "bar"))
	assert.Check(t, is.Equal(got["files/suid"].Mode, uint32(0o4755)))
	if isRoot {
		assert.Check(t, is.Equal(got["files/xattr"].Xattrs["security.capability"], capNetBindService))
		assert.Check(t, is.Equal(got["layer/opaque"].Xattrs[overlayOpaque], "y"))
		assert.Check(t, is.Equal(got["files/b"].Uid, uint32(999)))
		assert.Check(t, is.Equal(gotVol["."].Uid, uint32(999)))
	}
}

// compareTrees compares two describe results but for inode numbers.
func compareTrees(t *testing.T, want, got map[string]fileDesc) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		if !assert.Check(t, ok, "%s is missing", p) {
			continue
		}
		w.Ino, g.Ino = 0, 0
		assert.Check(t, is.DeepEqual(w, g), "%s", p)
	}
	for p := range got {
		_, ok := want[p]
		assert.Check(t, ok, "%s was not sent", p)
	}
}

func countEntries(t *testing.T, stream []byte) int64 {
	tr := tar.NewReader(bytes.NewReader(stream))
	var n int64
	for {
		_, err := tr.Next()
		if err == io.EOF {
			return n
		}
		assert.NilError(t, err)
		n++
	}
}

func TestScanRefuses(t *testing.T) {
	if !isRoot {
		t.Skip("device nodes and trusted.* attributes need root")
	}
	dev := tempDir(t)
	assert.NilError(t, os.Mkdir(filepath.Join(dev, "dev"), 0o755))
	assert.NilError(t, unix.Mknod(filepath.Join(dev, "dev/sda1"), unix.S_IFBLK|0o600, int(unix.Mkdev(8, 1))))
	_, err := scanTree("rootfs/", dev)
	assert.Check(t, is.ErrorContains(err, "rootfs/dev/sda1 is a device node (8:1)"))
	err = writeTree(tar.NewWriter(io.Discard), "rootfs/", dev)
	assert.Check(t, is.ErrorContains(err, "rootfs/dev/sda1 is a device node (8:1)"))

	meta := tempDir(t)
	assert.NilError(t, os.WriteFile(filepath.Join(meta, "f"), nil, 0o644))
	assert.NilError(t, unix.Setxattr(filepath.Join(meta, "f"), "trusted.overlay.metacopy", nil, 0))
	_, err = scanTree("rootfs/", meta)
	assert.Check(t, is.ErrorContains(err, "rootfs/f: it has trusted.overlay.metacopy"))
}

// gnuSparseBomb is a 2 kB tar of one entry in the old GNU sparse format
// that declares realSize bytes: a hole, then one block of data.
func gnuSparseBomb(name string, realSize int64) []byte {
	blk := make([]byte, blockSize)
	octal := func(off, size int, v int64) { copy(blk[off:off+size], fmt.Sprintf("%0*o\x00", size-1, v)) }
	copy(blk, name)
	octal(100, 8, 0o644)           // mode
	octal(108, 8, 0)               // uid
	octal(116, 8, 0)               // gid
	octal(124, 12, blockSize)      // size in the archive
	octal(136, 12, 0)              // mtime
	blk[156] = tar.TypeGNUSparse   // typeflag
	copy(blk[257:], "ustar  \x00") // GNU magic and version
	octal(386, 12, realSize-512)   // sparse[0].offset
	octal(398, 12, blockSize)      // sparse[0].numbytes
	octal(483, 12, realSize)       // realsize
	copy(blk[148:156], "        ") // the checksum counts itself as spaces
	sum := 0
	for _, b := range blk {
		sum += int(b)
	}
	copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
	blk = append(blk, bytes.Repeat([]byte("A"), blockSize)...)
	return append(blk, make([]byte, 2*blockSize)...)
}

// paxSparse is a tar of one entry in the PAX sparse format 0.1 declaring
// realSize bytes. archive/tar's writer drops GNU.sparse records, so the
// PAX header goes in as a regular file whose type is changed afterwards.
func paxSparse(t testing.TB, name string, realSize int64) []byte {
	var records string
	for _, kv := range [][2]string{{"GNU.sparse.major", "0"}, {"GNU.sparse.minor", "1"},
		{"GNU.sparse.size", fmt.Sprint(realSize)}, {"GNU.sparse.numblocks", "1"}, {"GNU.sparse.map", fmt.Sprintf("%d,%d", realSize-blockSize, blockSize)}} {
		records += paxRecord(kv[0], kv[1])
	}
	raw := tarStream(t,
		&tar.Header{Name: "PaxHeader", Typeflag: tar.TypeReg, Size: int64(len(records)), Format: tar.FormatUSTAR},
		&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: blockSize, Format: tar.FormatUSTAR}).Bytes()
	copy(raw[blockSize:], records) // stream wrote "x"s
	raw[156] = tar.TypeXHeader
	setChecksum(raw[:blockSize])
	return raw
}

// paxRecord is a PAX record: its length in decimal counts itself.
func paxRecord(k, v string) string {
	n := len(k) + len(v) + 3
	n += len(fmt.Sprint(n + len(fmt.Sprint(n))))
	return fmt.Sprintf("%d %s=%s\n", n, k, v)
}

// setChecksum sets the checksum of the tar header block blk.
func setChecksum(blk []byte) {
	copy(blk[148:156], "        ") // the checksum counts itself as spaces
	sum := 0
	for _, b := range blk[:blockSize] {
		sum += int(b)
	}
	copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

// TestTarReaderSparse records what archive/tar's reader makes of sparse
// entries, which checkHeader refuses: the old GNU format keeps its type,
// the PAX formats become regular files with GNU.sparse records; both
// declare their expanded size.
func TestTarReaderSparse(t *testing.T) {
	for name, raw := range map[string][]byte{
		"gnu": gnuSparseBomb("rootfs/bomb", 256<<20),
		"pax": paxSparse(t, "rootfs/bomb", 256<<20),
	} {
		assert.Check(t, len(raw) <= 3072, "%s: %d bytes", name, len(raw))
		hdr, err := tar.NewReader(bytes.NewReader(raw)).Next()
		assert.NilError(t, err, name)
		assert.Check(t, is.Equal(hdr.Size, int64(256<<20)), name)
		if name == "gnu" {
			assert.Check(t, is.Equal(hdr.Typeflag, byte(tar.TypeGNUSparse)))
		} else {
			assert.Check(t, is.Equal(hdr.Typeflag, byte(tar.TypeReg)))
			assert.Check(t, is.Equal(hdr.PAXRecords["GNU.sparse.major"], "0"))
		}
		err = checkHeader(hdr)
		assert.Check(t, errors.Is(err, errUnsafe), "%s: %v", name, err)
	}
}

// stream builds a tar of the given headers; a regular file's contents are
// Size times "x".
func tarStream(t testing.TB, hdrs ...*tar.Header) *bytes.Buffer {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		assert.NilError(t, tw.WriteHeader(h))
		if h.Typeflag == tar.TypeReg {
			_, err := tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
			assert.NilError(t, err)
		}
	}
	assert.NilError(t, tw.Close())
	return &buf
}

// layout is a target (target/rootfs, target/cp, target/vol-v) next to a
// sentinel tree (outside) that no stream may change.
type layout struct {
	top, outside, target string
}

func newLayout(t testing.TB, top string) layout {
	return newLayoutIn(t, top, top)
}

// newLayoutIn makes the layout in dir, below top, which the sentinel
// covers.
func newLayoutIn(t testing.TB, top, dir string) layout {
	l := layout{top: top, outside: filepath.Join(dir, "outside"), target: filepath.Join(dir, "target")}
	makeSentinel(t, l.outside)
	makeSections(t, l.target)
	return l
}

func makeSentinel(t testing.TB, dir string) {
	assert.NilError(t, os.MkdirAll(filepath.Join(dir, "d"), 0o755))
	for p, mode := range map[string]os.FileMode{"f": 0o640, "exe": 0o750, "d/g": 0o600} {
		assert.NilError(t, os.WriteFile(filepath.Join(dir, p), []byte("sentinel "+p), mode))
		assert.NilError(t, os.Chmod(filepath.Join(dir, p), mode))
	}
	assert.NilError(t, os.Chmod(filepath.Join(dir, "d"), 0o700))
	assert.NilError(t, os.Symlink("f", filepath.Join(dir, "link")))
}

// sentinel describes everything below top but the sections (whose own
// metadata the stream sets) and their contents.
func (l layout) sentinel(t testing.TB) map[string]fileDesc {
	target, err := filepath.Rel(l.top, l.target)
	assert.NilError(t, err)
	return describe(t, l.top, func(rel string) bool { return strings.HasPrefix(rel, target+"/") })
}

// extract extracts raw into l's target with the given limit.
func (l layout) extract(raw []byte, limit int64, noChown bool) error {
	x := &extractor{limit: limit, dir: sections(l.target), noChown: noChown}
	return x.extract(bytes.NewReader(raw))
}

// allocated is the disk space of the files below dir.
func allocated(t testing.TB, dir string) int64 {
	var n int64
	assert.NilError(t, filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		var st unix.Stat_t
		if err == nil {
			err = unix.Lstat(p, &st)
		}
		n += st.Blocks * 512
		return err
	}))
	return n
}

func TestExtractRefusesHostileStreams(t *testing.T) {
	sym := func(name, target string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target}
	}
	dir := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o777} }
	file := func(name string, size int64) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o666, Size: size}
	}
	link := func(name, target string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target}
	}
	withXattr := func(h *tar.Header, name string) *tar.Header {
		h.PAXRecords = map[string]string{paxXattr + name: "x"}
		return h
	}
	var flood []*tar.Header
	for i := range 100 {
		flood = append(flood, dir(fmt.Sprintf("rootfs/d%d/", i)))
	}
	const big = 1 << 30
	for _, tc := range []struct {
		name   string
		stream func(t testing.TB, outside string) []byte
		limit  int64
		want   string
		unsafe bool // the error is errUnsafe
	}{
		{name: "symlink then directory", want: "names it twice", unsafe: true,
			stream: headers(func(o string) []*tar.Header { return []*tar.Header{sym("rootfs/x", o), dir("rootfs/x/")} })},
		{name: "symlink then file", want: "names it twice", unsafe: true,
			stream: headers(func(o string) []*tar.Header { return []*tar.Header{sym("rootfs/x", o+"/f"), file("rootfs/x", 3)} })},
		{name: "file through a symlink", want: "x is a symlink or not a directory", unsafe: true,
			stream: headers(func(o string) []*tar.Header { return []*tar.Header{sym("rootfs/x", o), file("rootfs/x/f", 3)} })},
		{name: "directory through a symlink", want: "x is a symlink or not a directory", unsafe: true,
			stream: headers(func(o string) []*tar.Header { return []*tar.Header{sym("rootfs/x", o), dir("rootfs/x/d/")} })},
		{name: "whiteout through a symlink", want: "x is a symlink or not a directory", unsafe: true,
			stream: headers(func(o string) []*tar.Header {
				return []*tar.Header{sym("rootfs/x", o), {Name: "rootfs/x/f", Typeflag: tar.TypeChar}}
			})},
		{name: "symlink then hard link", want: "not a file the stream carried", unsafe: true,
			stream: headers(func(o string) []*tar.Header {
				return []*tar.Header{sym("rootfs/x", o+"/f"), link("rootfs/h", "rootfs/x")}
			})},
		{name: "hard link through a symlink", want: "not a file the stream carried", unsafe: true,
			stream: headers(func(o string) []*tar.Header { return []*tar.Header{sym("rootfs/x", o), link("rootfs/h", "rootfs/x/f")} })},
		{name: "hard link to ../outside", want: `".." component`, unsafe: true,
			stream: headers(func(o string) []*tar.Header { return []*tar.Header{link("rootfs/h", "rootfs/../../outside/f")} })},
		{name: "hard link to an absolute path", want: "an absolute name", unsafe: true,
			stream: headers(func(o string) []*tar.Header { return []*tar.Header{link("rootfs/h", o+"/f")} })},
		{name: "hard link across sections", want: "in another section", unsafe: true,
			stream: headers(func(o string) []*tar.Header {
				return []*tar.Header{file("checkpoint/a", 3), link("rootfs/h", "checkpoint/a")}
			})},
		{name: "dot-dot", want: `".." component`, unsafe: true,
			stream: headers(func(o string) []*tar.Header { return []*tar.Header{file("rootfs/../escape", 3)} })},
		{name: "dot-dot below", want: `".." component`, unsafe: true,
			stream: headers(func(o string) []*tar.Header { return []*tar.Header{dir("rootfs/a/"), file("rootfs/a/../../../f", 3)} })},
		{name: "dot", want: `"." component`, unsafe: true,
			stream: headers(func(o string) []*tar.Header { return []*tar.Header{file("rootfs/./f", 3)} })},
		{name: "absolute", want: "an absolute name", unsafe: true,
			stream: headers(func(o string) []*tar.Header { return []*tar.Header{file(o+"/f", 3)} })},
		{name: "empty component", want: `"" component`, unsafe: true,
			stream: headers(func(o string) []*tar.Header { return []*tar.Header{file("rootfs//etc/passwd", 3)} })},
		{name: "unknown section", want: `unknown section "etc"`, unsafe: true,
			stream: headers(func(o string) []*tar.Header { return []*tar.Header{file("etc/passwd", 3)} })},
		{name: "volume without a name", want: "a volume without a name", unsafe: true,
			stream: headers(func(o string) []*tar.Header { return []*tar.Header{dir("volumes/")} })},
		{name: "section root as a file", want: "a section's root must be a directory", unsafe: true,
			stream: headers(func(o string) []*tar.Header { return []*tar.Header{file("rootfs", 3)} })},
		{name: "device 8:1", want: "a device node (8:1)", unsafe: true,
			stream: headers(func(o string) []*tar.Header {
				return []*tar.Header{{Name: "rootfs/sda1", Typeflag: tar.TypeChar, Devmajor: 8, Devminor: 1, Mode: 0o666}}
			})},
		{name: "block device", want: "entry type '4' is not carried", unsafe: true,
			stream: headers(func(o string) []*tar.Header {
				return []*tar.Header{{Name: "rootfs/sda1", Typeflag: tar.TypeBlock, Devmajor: 8, Devminor: 1, Mode: 0o666}}
			})},
		{name: "overlay redirect", want: "extended attribute trusted.overlay.redirect is not carried", unsafe: true,
			stream: headers(func(o string) []*tar.Header {
				return []*tar.Header{withXattr(dir("rootfs/d/"), "trusted.overlay.redirect")}
			})},
		{name: "overlay metacopy", want: "extended attribute trusted.overlay.metacopy is not carried", unsafe: true,
			stream: headers(func(o string) []*tar.Header {
				return []*tar.Header{withXattr(file("rootfs/f", 3), "trusted.overlay.metacopy")}
			})},
		{name: "selinux label", want: "extended attribute security.selinux is not carried", unsafe: true,
			stream: headers(func(o string) []*tar.Header { return []*tar.Header{withXattr(file("rootfs/f", 3), "security.selinux")} })},
		{name: "xattr on a symlink", want: "extended attribute user.a on an entry of type '2'", unsafe: true,
			stream: headers(func(o string) []*tar.Header { return []*tar.Header{withXattr(sym("rootfs/l", o), "user.a")} })},
		{name: "GNU sparse bomb", want: "a GNU sparse entry", unsafe: true, limit: 64 << 10,
			stream: func(testing.TB, string) []byte { return gnuSparseBomb("rootfs/bomb", 256<<20) }},
		{name: "GNU sparse bomb under a large limit", want: "a GNU sparse entry", unsafe: true, limit: big,
			stream: func(testing.TB, string) []byte { return gnuSparseBomb("rootfs/bomb", 256<<20) }},
		{name: "PAX sparse under a large limit", want: "a sparse entry (GNU.sparse.major)", unsafe: true, limit: big,
			stream: func(t testing.TB, _ string) []byte { return paxSparse(t, "rootfs/bomb", 256<<20) }},
		{name: "file over the limit", want: "more than the 4096 bytes its source announced", limit: 4096,
			stream: headers(func(o string) []*tar.Header { return []*tar.Header{file("rootfs/big", 8192)} })},
		{name: "header flood", want: "more than the 20480 bytes its source announced", limit: 20 << 10,
			stream: headers(func(o string) []*tar.Header { return flood })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLayout(t, tempDir(t))
			before := l.sentinel(t)
			limit := tc.limit
			if limit == 0 {
				limit = 1 << 20
			}
			err := l.extract(tc.stream(t, l.outside), limit, !isRoot)
			assert.Check(t, is.ErrorContains(err, tc.want))
			if tc.unsafe {
				assert.Check(t, errors.Is(err, errUnsafe), "%v", err)
			}
			assert.Check(t, is.DeepEqual(before, l.sentinel(t)))
			assert.Check(t, allocated(t, l.target) < 1<<20, "%d bytes were written", allocated(t, l.target))
			_, statErr := os.Lstat(filepath.Join(l.target, "rootfs/big"))
			assert.Check(t, errors.Is(statErr, fs.ErrNotExist), "nothing of an entry over the limit is written")
		})
	}
}

func headers(f func(outside string) []*tar.Header) func(testing.TB, string) []byte {
	return func(t testing.TB, outside string) []byte { return tarStream(t, f(outside)...).Bytes() }
}

// The target's own symlinks are replaced, never followed.
func TestExtractReplacesWhatTheTargetHas(t *testing.T) {
	l := newLayout(t, tempDir(t))
	rootfs := filepath.Join(l.target, "rootfs")
	for name, target := range map[string]string{"d": l.outside, "f": l.outside + "/f", "p": l.outside + "/f", "w": l.outside + "/f"} {
		assert.NilError(t, os.Symlink(target, filepath.Join(rootfs, name)))
	}
	before := l.sentinel(t)
	raw := tarStream(t,
		&tar.Header{Name: "rootfs/d/", Typeflag: tar.TypeDir, Mode: 0o777},
		&tar.Header{Name: "rootfs/d/inside", Typeflag: tar.TypeReg, Mode: 0o666, Size: 2},
		&tar.Header{Name: "rootfs/f", Typeflag: tar.TypeReg, Mode: 0o666, Size: 3},
		&tar.Header{Name: "rootfs/p", Typeflag: tar.TypeFifo, Mode: 0o666},
		&tar.Header{Name: "rootfs/w", Typeflag: tar.TypeChar, Mode: 0o666},
	).Bytes()
	assert.NilError(t, l.extract(raw, 1<<20, !isRoot))
	assert.Check(t, is.DeepEqual(before, l.sentinel(t)))
	got := describe(t, rootfs, nil)
	assert.Check(t, is.Equal(got["d"].Type, "dir"))
	assert.Check(t, is.Equal(got["d"].Mode, uint32(0o777)))
	assert.Check(t, is.Equal(got["d/inside"].Type, "file"))
	assert.Check(t, is.Equal(got["f"].Type, "file"))
	assert.Check(t, is.Equal(got["f"].Mode, uint32(0o666)))
	assert.Check(t, is.Equal(got["p"].Type, "fifo"))
	assert.Check(t, is.Equal(got["p"].Mode, uint32(0o666)))
	assert.Check(t, is.Equal(got["w"].Type, "char"))
}

func TestExtractUnknownVolume(t *testing.T) {
	l := newLayout(t, tempDir(t))
	err := l.extract(tarStream(t, &tar.Header{Name: "volumes/nope/x", Typeflag: tar.TypeReg, Mode: 0o644}).Bytes(), 1<<20, true)
	assert.Check(t, is.ErrorContains(err, `"volumes/nope/x": no volume "nope" here`))
}

// chmodViaProc is what kernels before 6.6 use instead of fchmodat2.
func TestChmodViaProc(t *testing.T) {
	dir := tempDir(t)
	assert.NilError(t, unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	assert.NilError(t, os.Symlink(filepath.Join(dir, "fifo"), filepath.Join(dir, "link")))
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	assert.NilError(t, err)
	defer unix.Close(fd)
	assert.NilError(t, chmodViaProc(fd, "fifo", 0o1642))
	st, err := os.Lstat(filepath.Join(dir, "fifo"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Mode()&(fs.ModePerm|fs.ModeSticky), 0o642|fs.ModeSticky))
	err = chmodViaProc(fd, "link", 0o777)
	assert.Check(t, errors.Is(err, errUnsafe), "%v", err)
	st, err = os.Lstat(filepath.Join(dir, "fifo"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Mode().Perm(), fs.FileMode(0o642)))
}
