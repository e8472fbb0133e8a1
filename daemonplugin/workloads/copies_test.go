package workloads

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"

	"github.com/containerd/errdefs"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
)

// TestCopiesFor: a replica is made with the content of every copy of its
// service, or refused by name (scale, a cold relocation: only create -f
// has the files).
func TestCopiesFor(t *testing.T) {
	want := []spec.Copy{{Source: "./a.conf", Target: "/etc/a.conf"}}
	got, err := copiesFor("h2", want, []api.CopyContent{{Target: "/etc/a.conf", Tar: []byte("x")}})
	assert.NilError(t, err)
	assert.Check(t, is.Len(got, 1))

	_, err = copiesFor("h2", want, nil)
	assert.Check(t, errdefs.IsFailedPrecondition(err), "%v", err)
	assert.Check(t, is.ErrorContains(err, "./a.conf (for /etc/a.conf), beside the service's Compose file, is not on node h2"))

	_, err = copiesFor("h2", want, []api.CopyContent{{Target: "/etc/a.conf", Tar: make([]byte, spec.MaxCopyBytes+1)}})
	assert.Check(t, errdefs.IsInvalidArgument(err), "%v", err)
}

// TestUnderFolders: a copy whose folder the image lacks is made under new
// folders, and only those.
func TestUnderFolders(t *testing.T) {
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	assert.NilError(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "site/", Mode: 0o755}))
	assert.NilError(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "site/index.html", Mode: 0o644, Size: 2}))
	_, _ = tw.Write([]byte("hi"))
	assert.NilError(t, tw.Close())

	r, err := underFolders([]string{"srv", "www"}, in.Bytes())
	assert.NilError(t, err)
	var names []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		assert.NilError(t, err)
		names = append(names, h.Name)
	}
	assert.Check(t, is.DeepEqual(names, []string{"srv/", "srv/www/", "srv/www/site/", "srv/www/site/index.html"}))

	same, err := underFolders(nil, in.Bytes())
	assert.NilError(t, err)
	b, _ := io.ReadAll(same)
	assert.Check(t, is.DeepEqual(b, in.Bytes()))
}
