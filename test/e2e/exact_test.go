//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// buildEveryKind makes, under root, an entry of every kind and metadata a
// container's writable layer (overlay: with a whiteout and an opaque
// directory) or volume holds.
func buildEveryKind(t *testing.T, root string, overlay bool) {
	t.Helper()
	must := func(err error) { t.Helper(); assert.NilError(t, err) }
	p := func(rel string) string { return filepath.Join(root, rel) }
	must(os.MkdirAll(p("etc/app/empty"), 0o755))
	must(os.MkdirAll(p("srv/sticky"), 0o755))
	must(os.Chmod(p("srv/sticky"), 0o1777))
	must(os.WriteFile(p("etc/app/conf"), []byte("x=1\n"), 0o640))
	must(os.Chown(p("etc/app/conf"), 999, 999))
	must(os.WriteFile(p("etc/app/group-write"), []byte("log\n"), 0o660))
	must(os.Chmod(p("etc/app/group-write"), 0o660))
	must(os.WriteFile(p("usr-bin-suid"), []byte("#!/bin/true\n"), 0o755))
	must(os.Chmod(p("usr-bin-suid"), 0o4755|0o2000))
	must(os.Chown(p("usr-bin-suid"), 0, 1000))
	must(os.Symlink("../etc/app/conf", p("srv/link")))
	must(os.Symlink("/nowhere", p("srv/dangling")))
	must(os.Link(p("etc/app/conf"), p("srv/hardlink")))
	f, err := os.Create(p("srv/sparse"))
	must(err)
	_, err = f.WriteAt([]byte("middle"), 32<<20)
	must(err)
	must(f.Truncate(64 << 20))
	must(f.Close())
	must(unix.Mkfifo(p("srv/fifo"), 0o620))
	must(unix.Setxattr(p("etc/app/conf"), "user.origin", []byte("e2e"), 0))
	if overlay {
		must(unix.Mknod(p("gone"), unix.S_IFCHR, 0)) // a whiteout
		must(os.MkdirAll(p("opaque"), 0o750))
		must(unix.Setxattr(p("opaque"), "trusted.overlay.opaque", []byte("y"), 0))
	}
	must(os.MkdirAll(p("readonly"), 0o755))
	must(os.WriteFile(p("readonly/inside"), []byte("ro"), 0o444))
	must(os.Chmod(p("readonly"), 0o555))
	old := time.Date(2020, 2, 29, 12, 0, 0, 123456789, time.UTC)
	for _, rel := range []string{"etc/app/conf", "srv/sticky", "readonly/inside"} {
		must(os.Chtimes(p(rel), old, old))
	}
	must(unix.Lutimes(p("srv/link"), []unix.Timeval{unix.NsecToTimeval(old.UnixNano()), unix.NsecToTimeval(old.UnixNano())}))
}

// describeTree lists every entry under root with what must arrive exactly:
// type and mode bits, owner, size, content, link target, chosen xattrs,
// mtime, which names share an inode, and whether a big file stayed sparse.
func describeTree(t *testing.T, root string, only map[string]bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	inodes := map[uint64][]string{}
	assert.NilError(t, filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		top := strings.SplitN(rel, "/", 2)[0]
		if rel == "." || !only[top] {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%v uid=%d gid=%d", info.Mode(), st.Uid, st.Gid)
		switch {
		case info.Mode().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			line += fmt.Sprintf(" size=%d sha=%s sparse=%v", info.Size(), hex.EncodeToString(sum[:6]), st.Blocks*512 < info.Size()/2)
			inodes[st.Ino] = append(inodes[st.Ino], rel)
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(path)
			line += " -> " + target
		case info.Mode()&fs.ModeDevice != 0:
			line += fmt.Sprintf(" dev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if !info.IsDir() { // a directory's mtime changes with what arrives in it
			line += " mtime=" + time.Unix(st.Mtim.Sec, st.Mtim.Nsec).UTC().Format(time.RFC3339Nano)
		}
		for _, x := range []string{"user.origin", "trusted.overlay.opaque"} {
			buf := make([]byte, 64)
			if n, err := unix.Lgetxattr(path, x, buf); err == nil {
				line += " " + x + "=" + string(buf[:n])
			}
		}
		out[rel] = line
		return nil
	}))
	for _, names := range inodes {
		sort.Strings(names)
		for _, n := range names {
			out[n] += " links=" + strings.Join(names, ",")
		}
	}
	return out
}

func TestMigrateKeepsEveryKindOfEntry(t *testing.T) {
	initFleet(t)
	removeServices(t, "exact")
	for _, h := range []string{"h2", "h3"} {
		docker(t, h, "volume", "rm", "-f", "e2e-exact")
	}
	t.Cleanup(func() {
		removeServices(t, "exact")
		for _, h := range []string{"h2", "h3"} {
			docker(t, h, "volume", "rm", "-f", "e2e-exact")
		}
	})
	mustFleet(t, "create", "--name", "exact", "--image", workload, "--node", "h2", "-v", "e2e-exact:/data", "-e", "BALLAST_MB=1")
	upper := func(h string) string {
		return mustDocker(t, h, "inspect", "exact.1", "--format", `{{index .GraphDriver.Data "UpperDir"}}`)
	}
	volume := func(h string) string {
		name := mustDocker(t, h, "inspect", "exact.1", "--format", "{{range .Mounts}}{{.Name}}{{end}}")
		return mustDocker(t, h, "volume", "inspect", name, "--format", "{{.Mountpoint}}")
	}
	mine := map[string]bool{"etc": true, "srv": true, "usr-bin-suid": true, "gone": true, "opaque": true, "readonly": true}
	buildEveryKind(t, upper("h2"), true)
	buildEveryKind(t, volume("h2"), false)
	layer, data := describeTree(t, upper("h2"), mine), describeTree(t, volume("h2"), mine)
	assert.Assert(t, is.Len(layer, 17), "%v", layer)
	assert.Assert(t, is.Len(data, 15), "%v", data)

	mustFleet(t, "migrate", "exact.1", "--to", "h3")
	c, ok := containerOn(t, "exact.1")
	assert.Assert(t, ok && c.Host == "h3")
	for name, pair := range map[string][2]map[string]string{
		"writable layer": {layer, describeTree(t, upper("h3"), mine)},
		"volume":         {data, describeTree(t, volume("h3"), mine)},
	} {
		for rel, want := range pair[0] {
			assert.Check(t, is.Equal(pair[1][rel], want), "%s: %s", name, rel)
		}
		assert.Check(t, is.Equal(len(pair[1]), len(pair[0])), "%s: entries", name)
	}
}
