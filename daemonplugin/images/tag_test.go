package images

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestOnlyTag(t *testing.T) {
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	for name, body := range map[string]string{
		"layer.tar":     "layer",
		"repositories":  `{"docker-fleet/anchor":{"latest":"x"}}`,
		"manifest.json": `[{"Config":"c.json","RepoTags":["app:1","docker-fleet/anchor:latest","other:2"],"Layers":["layer.tar"]}]`,
	} {
		assert.NilError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))}))
		_, err := tw.Write([]byte(body))
		assert.NilError(t, err)
	}
	assert.NilError(t, tw.Close())

	got := map[string][]byte{}
	tr := tar.NewReader(OnlyTag(&in, "app:1"))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		assert.NilError(t, err)
		b, err := io.ReadAll(tr)
		assert.NilError(t, err)
		got[hdr.Name] = b
	}
	assert.Check(t, is.Equal(string(got["layer.tar"]), "layer"))
	_, legacy := got["repositories"]
	assert.Check(t, !legacy)
	var m []struct {
		RepoTags []string
		Layers   []string
	}
	assert.NilError(t, json.Unmarshal(got["manifest.json"], &m))
	assert.Check(t, is.DeepEqual(m[0].RepoTags, []string{"app:1"}))
	assert.Check(t, is.DeepEqual(m[0].Layers, []string{"layer.tar"}))

	// The fleet's own images are never taken from a peer, even when named.
	in.Reset()
	tw = tar.NewWriter(&in)
	body := `[{"RepoTags":["docker-fleet/anchor:latest"]}]`
	assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "manifest.json", Mode: 0o644, Size: int64(len(body))}))
	_, _ = tw.Write([]byte(body))
	assert.NilError(t, tw.Close())
	tr = tar.NewReader(OnlyTag(&in, "docker-fleet/anchor:latest"))
	_, err := tr.Next()
	assert.NilError(t, err)
	b, _ := io.ReadAll(tr)
	assert.NilError(t, json.Unmarshal(b, &m))
	assert.Check(t, is.Len(m[0].RepoTags, 0))
}
