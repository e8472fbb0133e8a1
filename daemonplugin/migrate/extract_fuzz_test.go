package migrate

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The fuzz input is a sequence of entries of fuzzEntrySize bytes each:
// type, name length and flags, four name components, link target, mode,
// size, device. Names and targets come from small alphabets that make
// escapes likely: "..", "", absolute paths to the sentinel tree, and the
// names of symlinks to it that the target already has ("l", "m").
const fuzzEntrySize = 10

var (
	fuzzTypes   = []byte{tar.TypeDir, tar.TypeReg, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo, tar.TypeChar, tar.TypeBlock}
	fuzzComps   = []string{"rootfs", "volumes", "v", "checkpoint", "x", "y", "l", "m", "..", ".", ""}
	fuzzModes   = []int64{0o755, 0o777, 0o644, 0, 0o4755, 0o1777, 0o2770, 0o555}
	fuzzDevices = [][2]int64{{0, 0}, {8, 1}, {1, 3}}
	fuzzXattrs  = []string{"", paxXattr + "user.a", paxXattr + "trusted.overlay.redirect", paxXattr + overlayOpaque, paxXattr + "security.selinux"}
	// "@" stands for the sentinel tree's absolute path.
	fuzzTargets = []string{"rootfs/x", "rootfs/y", "rootfs/x/y", "rootfs/l", "rootfs/m", "volumes/v/x", "checkpoint/x",
		"x", "../outside/f", "../../outside", "../../../outside/f", "@", "@/f", "@/d", "@/d/g"}
)

// fuzzLimit is small enough that the limit is reached now and then.
const fuzzLimit = 32 << 10

type fuzzEntry struct {
	typ          byte
	name, target string
	mode         int64
	size         int
	dev          int
	xattr        string
}

// decodeStream makes a tar of the entries data encodes; outside replaces
// "@" in link targets.
func decodeStream(data []byte, outside string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for ; len(data) >= fuzzEntrySize; data = data[fuzzEntrySize:] {
		b := data[:fuzzEntrySize]
		n := int(b[1]%4) + 1
		var comps []string
		for _, c := range b[2 : 2+n] {
			comps = append(comps, fuzzComps[int(c)%len(fuzzComps)])
		}
		hdr := &tar.Header{
			Typeflag: fuzzTypes[int(b[0])%len(fuzzTypes)],
			Name:     strings.Join(comps, "/"),
			Linkname: strings.Replace(fuzzTargets[int(b[6])%len(fuzzTargets)], "@", outside, 1),
			Mode:     fuzzModes[int(b[7])%len(fuzzModes)],
			ModTime:  time.Unix(1600000000, 0),
		}
		if b[1]&4 != 0 {
			hdr.Name += "/"
		}
		if x := fuzzXattrs[int(b[1]>>3)%len(fuzzXattrs)]; x != "" {
			hdr.PAXRecords = map[string]string{x: "y"}
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(b[8] % 64)
		}
		dev := fuzzDevices[int(b[9])%len(fuzzDevices)]
		hdr.Devmajor, hdr.Devminor = dev[0], dev[1]
		if tw.WriteHeader(hdr) != nil {
			continue // a header tar cannot encode: no entry
		}
		_, _ = tw.Write(bytes.Repeat([]byte("x"), int(hdr.Size)))
	}
	_ = tw.Close()
	return buf.Bytes()
}

// encodeEntries is decodeStream's inverse, for the seeds.
func encodeEntries(entries ...fuzzEntry) []byte {
	index := func(list []string, s string) byte {
		i := slices.Index(list, s)
		if i < 0 {
			panic(fmt.Sprintf("%q is not in the fuzz alphabet", s))
		}
		return byte(i)
	}
	var out []byte
	for _, e := range entries {
		name, slash := strings.CutSuffix(e.name, "/")
		comps := strings.Split(name, "/")
		if len(comps) > 4 {
			panic(fmt.Sprintf("%q has more than 4 components", e.name))
		}
		b := make([]byte, fuzzEntrySize)
		b[0] = byte(slices.Index(fuzzTypes, e.typ))
		b[1] = byte(len(comps)-1) | index(fuzzXattrs, e.xattr)<<3
		if slash {
			b[1] |= 4
		}
		for i, c := range comps {
			b[2+i] = index(fuzzComps, c)
		}
		if e.target != "" {
			b[6] = index(fuzzTargets, e.target)
		}
		b[7] = byte(slices.Index(fuzzModes, e.mode))
		b[8] = byte(e.size)
		b[9] = byte(e.dev)
		out = append(out, b...)
	}
	return out
}

// fuzzSeeds are the hostile streams of the unit tests, and a benign one.
func fuzzSeeds() [][]byte {
	dir := func(name string) fuzzEntry { return fuzzEntry{typ: tar.TypeDir, name: name, mode: 0o777} }
	file := func(name string) fuzzEntry { return fuzzEntry{typ: tar.TypeReg, name: name, mode: 0o644, size: 5} }
	sym := func(name, target string) fuzzEntry {
		return fuzzEntry{typ: tar.TypeSymlink, name: name, target: target}
	}
	link := func(name, target string) fuzzEntry { return fuzzEntry{typ: tar.TypeLink, name: name, target: target} }
	node := func(typ byte, name string, dev int) fuzzEntry {
		return fuzzEntry{typ: typ, name: name, mode: 0o777, dev: dev}
	}
	withXattr := func(e fuzzEntry, x string) fuzzEntry { e.xattr = x; return e }
	return [][]byte{
		encodeEntries(dir("rootfs/x/"), file("rootfs/x/y"), link("rootfs/y", "rootfs/x/y"),
			node(tar.TypeFifo, "rootfs/x/x", 0), node(tar.TypeChar, "volumes/v/x", 0), sym("checkpoint/x", "../outside/f")),
		encodeEntries(sym("rootfs/x", "@"), dir("rootfs/x/")),
		encodeEntries(sym("rootfs/x", "@/f"), file("rootfs/x")),
		encodeEntries(sym("rootfs/x", "@"), file("rootfs/x/y")),
		encodeEntries(sym("rootfs/x", "@/f"), link("rootfs/y", "rootfs/x")),
		encodeEntries(link("rootfs/x", "../outside/f")),
		encodeEntries(link("rootfs/x", "@/f")),
		encodeEntries(file("checkpoint/x"), link("rootfs/x", "checkpoint/x")),
		encodeEntries(file("rootfs/../x")),
		encodeEntries(dir("rootfs/x/"), file("rootfs/../../y")),
		encodeEntries(file("/rootfs/x")),
		encodeEntries(node(tar.TypeChar, "rootfs/x", 1)),
		encodeEntries(node(tar.TypeBlock, "rootfs/x", 1)),
		encodeEntries(withXattr(dir("rootfs/x/"), paxXattr+"trusted.overlay.redirect")),
		encodeEntries(withXattr(file("rootfs/x"), paxXattr+"security.selinux")),
		// The target's own symlinks: replaced, never followed.
		encodeEntries(dir("rootfs/l/"), file("rootfs/m"), file("rootfs/l/x")),
		encodeEntries(file("rootfs/l/x"), link("rootfs/x", "rootfs/m"), node(tar.TypeFifo, "rootfs/m", 0)),
	}
}

// FuzzExtract extracts arbitrary streams into a target next to a sentinel
// tree, and checks after each that nothing outside the sections changed.
func FuzzExtract(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	l := newFuzzLayout(f)
	before := l.sentinel(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		l.reset(t)
		raw := decodeStream(data, l.outside)
		// Errors are expected; escapes are not.
		_ = asNobody(t, func() error { return l.extract(raw, fuzzLimit, true) })
		assert.Check(t, is.DeepEqual(before, l.sentinel(t)))
	})
}

// nobody is who the extraction runs as when the test runs as root.
const nobody = 65534

// newFuzzLayout makes the layout two levels below the top of the
// sentinel, so that names climbing out of the target land where it looks;
// when the test is root, everything belongs to nobody, who could thus
// change it if the extractor let it.
func newFuzzLayout(t testing.TB) layout {
	top, err := os.MkdirTemp("", "fuzz-extract-")
	assert.NilError(t, err)
	t.Cleanup(func() { makeRemovable(top); _ = os.RemoveAll(top) })
	assert.NilError(t, os.Chmod(top, 0o755))
	work := filepath.Join(top, "a", "b")
	assert.NilError(t, os.MkdirAll(work, 0o755))
	l := newLayoutIn(t, top, work)
	giveToNobody(t, top)
	return l
}

// reset empties the sections, gives them the target's own symlinks to the
// sentinel tree ("l", "m"), and gives them back to nobody.
func (l layout) reset(t testing.TB) {
	for _, s := range []string{"rootfs", "cp", "vol-v"} {
		dir := filepath.Join(l.target, s)
		makeRemovable(dir)
		entries, err := os.ReadDir(dir)
		assert.NilError(t, err)
		for _, e := range entries {
			assert.NilError(t, os.RemoveAll(filepath.Join(dir, e.Name())))
		}
		assert.NilError(t, os.Chmod(dir, 0o755))
	}
	assert.NilError(t, os.Symlink(l.outside, filepath.Join(l.target, "rootfs", "l")))
	assert.NilError(t, os.Symlink(filepath.Join(l.outside, "f"), filepath.Join(l.target, "rootfs", "m")))
	giveToNobody(t, l.target)
}

func giveToNobody(t testing.TB, dir string) {
	if !isRoot {
		return
	}
	assert.NilError(t, filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, nobody, nobody)
	}))
}

// asNobody runs fn as nobody, with no groups and no capabilities, when the
// test runs as root. The fuzzer makes arbitrary streams, and an extractor
// bug running as root could change anything on this machine before the
// sentinel tree shows it; as nobody it can change only what nobody owns,
// which is the test's trees. It runs in this process rather than in a
// child so that the fuzzer sees the extractor's coverage.
//
// The kernel keeps credentials per thread (Go's syscall.Setuid changes
// them on all threads), so fn runs on a thread of its own that drops them
// with raw system calls. That thread stays locked to its goroutine, so no
// other goroutine ever runs on it, and ends with it.
func asNobody(t testing.TB, fn func() error) error {
	if !isRoot {
		return fn()
	}
	type result struct{ drop, fn error }
	c := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := dropThreadCredentials(); err != nil {
			c <- result{drop: err} // and fn does not run
			return
		}
		c <- result{fn: fn()}
	}()
	r := <-c
	if r.drop != nil {
		t.Fatalf("cannot run as nobody: %v", r.drop)
	}
	return r.fn
}

func dropThreadCredentials() error {
	for _, call := range [][4]uintptr{
		{unix.SYS_SETGROUPS, 0, 0, 0},
		{unix.SYS_SETRESGID, nobody, nobody, nobody},
		{unix.SYS_SETRESUID, nobody, nobody, nobody},
	} {
		if _, _, errno := unix.RawSyscall(call[0], call[1], call[2], call[3]); errno != 0 {
			return fmt.Errorf("system call %d: %w", call[0], errno)
		}
	}
	status, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		return err
	}
	if unix.Geteuid() != nobody || !bytes.Contains(status, []byte("\nCapEff:\t0000000000000000\n")) {
		return fmt.Errorf("the thread kept its privileges:\n%s", status)
	}
	return nil
}
