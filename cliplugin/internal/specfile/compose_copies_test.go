package specfile

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/spec"
)

// tarEntries lists a tar's entries with the content of its files.
func tarEntries(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		assert.NilError(t, err)
		body, err := io.ReadAll(tr)
		assert.NilError(t, err)
		out[h.Name] = string(body)
	}
}

// TestComposeCopiesFilesBesideIt: a bind mount of a file or folder beside
// the Compose file is copied from here into the replicas, never bound from
// the node's path; a path elsewhere is the node's own.
func TestComposeCopiesFilesBesideIt(t *testing.T) {
	dir := shopDir(t)
	assert.NilError(t, os.MkdirAll(filepath.Join(dir, "conf"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "conf", "app.conf"), []byte("listen 80;\n"), 0o644))
	assert.NilError(t, os.MkdirAll(filepath.Join(dir, "site", "img"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "site", "index.html"), []byte("<h1>hi</h1>"), 0o644))
	doc := `services:
  web:
    image: nginx
    volumes:
      - ./conf/app.conf:/etc/nginx/conf.d/app.conf:ro
      - ./site:/usr/share/nginx/html
      - ./not-yet:/var/cache/app
      - /srv/shared:/shared
`
	r, err := Parse("compose.yaml", []byte(doc), dir, nil)
	assert.NilError(t, err)
	web := r.Services[0]
	assert.Check(t, is.DeepEqual(web.Copies, []spec.Copy{
		{Source: "./conf/app.conf", Target: "/etc/nginx/conf.d/app.conf"},
		{Source: "./site", Target: "/usr/share/nginx/html"},
		{Source: "./not-yet", Target: "/var/cache/app"},
	}))
	assert.Check(t, is.DeepEqual(web.Volumes, []spec.Volume{{Source: "/srv/shared", Target: "/shared"}}), "a path elsewhere is the node's")
	copies := r.Copies["web"]
	assert.Assert(t, is.Len(copies, 3))
	assert.Check(t, is.DeepEqual(tarEntries(t, copies[0].Tar), map[string]string{"app.conf": "listen 80;\n"}))
	assert.Check(t, is.DeepEqual(tarEntries(t, copies[1].Tar), map[string]string{"html/": "", "html/img/": "", "html/index.html": "<h1>hi</h1>"}))
	assert.Check(t, is.DeepEqual(tarEntries(t, copies[2].Tar), map[string]string{"app/": ""}), "a missing folder is made empty")
}

// TestComposeCopiesAreBounded: what is copied is bounded.
func TestComposeCopiesAreBounded(t *testing.T) {
	dir := shopDir(t)
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "big"), make([]byte, spec.MaxCopyBytes+1), 0o644))
	_, err := Parse("compose.yaml", []byte("services:\n  a:\n    image: x\n    volumes: [./big:/big]\n"), dir, nil)
	assert.Check(t, is.ErrorContains(err, "services.a.volumes: ./big:/big: copying it beside the Compose file: more than"))
}
