package migrate

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestRoundTrip(t *testing.T) {
	src := t.TempDir()
	assert.NilError(t, os.MkdirAll(filepath.Join(src, "var/lib/app"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(src, "var/lib/app/state"), []byte("hello"), 0o640))
	assert.NilError(t, os.Symlink("state", filepath.Join(src, "var/lib/app/link")))

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	assert.NilError(t, writeTree(tw, "rootfs/", src))
	assert.NilError(t, tw.Close())

	dst := t.TempDir()
	x := &extractor{limit: 1 << 20, dir: func(section, name string) (string, error) { return dst, nil }}
	assert.NilError(t, x.extract(&buf))
	b, err := os.ReadFile(filepath.Join(dst, "var/lib/app/state"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(b), "hello"))
	st, err := os.Stat(filepath.Join(dst, "var/lib/app/state"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Mode().Perm(), os.FileMode(0o640)))
	l, err := os.Readlink(filepath.Join(dst, "var/lib/app/link"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(l, "state"))
}

// stream builds a tar of the given headers (regular files get "x").
func stream(t *testing.T, hdrs ...*tar.Header) *bytes.Buffer {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		if h.Typeflag == tar.TypeReg {
			h.Size = 1
		}
		assert.NilError(t, tw.WriteHeader(h))
		if h.Typeflag == tar.TypeReg {
			_, _ = tw.Write([]byte("x"))
		}
	}
	assert.NilError(t, tw.Close())
	return &buf
}

func TestExtractRefusesEscapes(t *testing.T) {
	outside := t.TempDir()
	for name, hdrs := range map[string][]*tar.Header{
		"dot-dot":  {{Name: "rootfs/../escape", Typeflag: tar.TypeReg, Mode: 0o644}},
		"absolute": {{Name: "rootfs//etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644}},
		"through a symlink": {
			{Name: "rootfs/evil", Typeflag: tar.TypeSymlink, Linkname: outside},
			{Name: "rootfs/evil/pwned", Typeflag: tar.TypeReg, Mode: 0o644},
		},
		"hard link":   {{Name: "rootfs/h", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}},
		"real device": {{Name: "rootfs/sda", Typeflag: tar.TypeChar, Devmajor: 8, Mode: 0o600}},
		"no section":  {{Name: "loose", Typeflag: tar.TypeReg, Mode: 0o644}},
	} {
		dst := t.TempDir()
		x := &extractor{limit: 1 << 20, dir: func(section, name string) (string, error) { return dst, nil }}
		err := x.extract(stream(t, hdrs...))
		assert.Check(t, errors.Is(err, errUnsafe), "%s: %v", name, err)
		_, statErr := os.Stat(filepath.Join(outside, "pwned"))
		assert.Check(t, os.IsNotExist(statErr), name)
	}
}

func TestExtractLimit(t *testing.T) {
	dst := t.TempDir()
	x := &extractor{limit: 1, dir: func(section, name string) (string, error) { return dst, nil }}
	err := x.extract(stream(t,
		&tar.Header{Name: "rootfs/a", Typeflag: tar.TypeReg, Mode: 0o644},
		&tar.Header{Name: "rootfs/b", Typeflag: tar.TypeReg, Mode: 0o644}))
	assert.Check(t, is.ErrorContains(err, "larger than"))
}

func TestExtractUnknownSection(t *testing.T) {
	x := &extractor{limit: 1 << 20, dir: func(section, name string) (string, error) {
		return "", errors.New("no section " + section)
	}}
	err := x.extract(stream(t, &tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644}))
	assert.Check(t, is.ErrorContains(err, "no section etc"))
}
