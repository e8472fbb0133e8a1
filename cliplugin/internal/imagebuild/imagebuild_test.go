package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/cliplugin/internal/specfile"
)

func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		assert.NilError(t, os.WriteFile(p, []byte(body), 0o644))
	}
}

// entries reads a tar stream into name → content ("" for directories,
// "-> target" for links).
func entries(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		assert.NilError(t, err)
		assert.Check(t, hdr.Uid == 0 && hdr.Gid == 0, "%s is owned by %d:%d", hdr.Name, hdr.Uid, hdr.Gid)
		switch hdr.Typeflag {
		case tar.TypeSymlink:
			out[hdr.Name] = "-> " + hdr.Linkname
		default:
			b, err := io.ReadAll(tr)
			assert.NilError(t, err)
			out[hdr.Name] = string(b)
		}
	}
}

func names(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestContextHonoursDockerignore(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"Dockerfile":            "FROM scratch\n",
		".dockerignore":         "# comment\n*.log\nsecret/\nbuild\n!build/keep.txt\ndocker/Dockerfile.dev\n",
		"app.txt":               "app",
		"debug.log":             "noise",
		"secret/key":            "k",
		"build/out.bin":         "o",
		"build/keep.txt":        "kept",
		"docker/Dockerfile.dev": "FROM scratch\n",
	})
	assert.NilError(t, os.Symlink("../elsewhere", filepath.Join(dir, "link")))

	rc, err := Context(dir, "docker/Dockerfile.dev")
	assert.NilError(t, err)
	defer rc.Close()
	got := entries(t, rc)
	assert.Check(t, is.DeepEqual(names(got), []string{
		".dockerignore", "Dockerfile", "app.txt", "build/keep.txt", "docker/", "docker/Dockerfile.dev", "link",
	}))
	assert.Check(t, is.Equal(got["app.txt"], "app"))
	assert.Check(t, is.Equal(got["link"], "-> ../elsewhere"), "a link goes as a link, not followed")
	assert.Check(t, is.Equal(got["docker/Dockerfile.dev"], "FROM scratch\n"), "the Dockerfile goes though .dockerignore names it")
}

func TestContextWithoutDockerignore(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"Dockerfile": "FROM scratch\n", "a/b": "x"})
	rc, err := Context(dir, "Dockerfile")
	assert.NilError(t, err)
	defer rc.Close()
	assert.Check(t, is.DeepEqual(names(entries(t, rc)), []string{"Dockerfile", "a/", "a/b"}))
}

// engine is a manager's engine that builds by replying stream.
type engine struct {
	stream string
	opts   client.ImageBuildOptions
	sent   map[string]string
	t      *testing.T
}

func (e *engine) ImageBuild(_ context.Context, body io.Reader, o client.ImageBuildOptions) (client.ImageBuildResult, error) {
	e.opts = o
	e.sent = entries(e.t, body)
	return client.ImageBuildResult{Body: io.NopCloser(strings.NewReader(e.stream))}, nil
}

func (e *engine) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	if ref != "shop-web:latest" {
		return client.ImageInspectResult{}, errors.New("no such image " + ref)
	}
	return client.ImageInspectResult{InspectResponse: image.InspectResponse{ID: "sha256:abc"}}, nil
}

func TestBuild(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"Dockerfile": "FROM fleet-workload:latest\nLABEL a=b\n"})
	v := "2"
	b := specfile.Build{Service: "web", Image: "shop-web:latest", Context: dir, Dockerfile: "Dockerfile",
		Args: map[string]*string{"V": &v}, Target: "prod"}
	e := &engine{t: t, stream: `{"stream":"Step 1/2 : FROM fleet-workload:latest\n"}
{"stream":"Step 2/2 : LABEL a=b\n"}
{"aux":{"ID":"sha256:abc"}}
{"stream":"Successfully tagged shop-web:latest\n"}
`}
	var out bytes.Buffer
	id, err := Build(context.Background(), e, b, &out)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(id, "sha256:abc"))
	assert.Check(t, is.Equal(out.String(), "Step 1/2 : FROM fleet-workload:latest\nStep 2/2 : LABEL a=b\nSuccessfully tagged shop-web:latest\n"))
	assert.Check(t, is.DeepEqual(e.opts.Tags, []string{"shop-web:latest"}))
	assert.Check(t, is.Equal(e.opts.Version, build.BuilderV1))
	assert.Check(t, is.Equal(e.opts.Target, "prod"))
	assert.Check(t, is.Equal(*e.opts.BuildArgs["V"], "2"))
	assert.Check(t, is.DeepEqual(names(e.sent), []string{"Dockerfile"}))

	// A step that fails: the builder's own words, naming the service.
	e.stream = `{"stream":"Step 1/2 : FROM fleet-workload:latest\n"}
{"errorDetail":{"message":"The command '/bin/sh -c exit 3' returned a non-zero code: 3"},"error":"The command '/bin/sh -c exit 3' returned a non-zero code: 3"}
`
	_, err = Build(context.Background(), e, b, &out)
	assert.Check(t, is.Error(err, "building shop-web:latest for service web: The command '/bin/sh -c exit 3' returned a non-zero code: 3"))
}
