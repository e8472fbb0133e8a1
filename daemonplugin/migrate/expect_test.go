package migrate

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
)

func TestCheckReceiveHeader(t *testing.T) {
	e := expected{Expectation: api.Expectation{ID: "abcdef0123", From: "h2", Container: "web.1", Network: "fleet", Cores: 2, Memory: 1 << 30}}
	good := api.ReceiveHeader{ID: "abcdef0123", Name: "web.1", From: "h2", Checkpoint: checkpointName, Network: "fleet",
		Cores: 2, Memory: 1 << 30, Config: container.Config{Labels: map[string]string{labels.Service: "web"}},
		Volumes: []api.VolumeMount{{Name: "data", Target: "/data"}}}
	assert.NilError(t, checkReceiveHeader(e, good))

	for name, mutate := range map[string]func(*api.ReceiveHeader){
		"host path as volume": func(h *api.ReceiveHeader) { h.Volumes[0].Name = "/" },
		"docker socket":       func(h *api.ReceiveHeader) { h.Volumes[0].Name = "/var/run/docker.sock" },
		"parent in volume":    func(h *api.ReceiveHeader) { h.Volumes[0].Name = "../x" },
		"relative target":     func(h *api.ReceiveHeader) { h.Volumes[0].Target = "data" },
		"unclean target":      func(h *api.ReceiveHeader) { h.Volumes[0].Target = "/data/../etc" },
		"volume twice":        func(h *api.ReceiveHeader) { h.Volumes = append(h.Volumes, h.Volumes[0]) },
		"other container":     func(h *api.ReceiveHeader) { h.Name = "db.1" },
		"more cores":          func(h *api.ReceiveHeader) { h.Cores = 3 },
		"more memory":         func(h *api.ReceiveHeader) { h.Memory = 2 << 30 },
		"host network":        func(h *api.ReceiveHeader) { h.Network = "host" },
		"not a fleet one":     func(h *api.ReceiveHeader) { h.Config.Labels = nil },
		"another migration":   func(h *api.ReceiveHeader) { h.ID = "ffffffffff" },
		"another source":      func(h *api.ReceiveHeader) { h.From = "h3" },
		"another checkpoint":  func(h *api.ReceiveHeader) { h.Checkpoint = "../../x" },
	} {
		h := good
		h.Volumes = append([]api.VolumeMount{}, good.Volumes...)
		h.Config.Labels = map[string]string{labels.Service: "web"}
		mutate(&h)
		err := checkReceiveHeader(e, h)
		assert.Check(t, errdefs.IsPermissionDenied(err), "%s: %v", name, err)
		assert.Check(t, is.ErrorContains(err, "refused migration"), name)
	}
}

func TestExpectations(t *testing.T) {
	m := &Migrator{Node: "h1"}
	ctx := t.Context()
	_, err := m.Expect(ctx, api.Expectation{ID: "abcdef0123", From: "h1", Container: "web.1", Network: "fleet"})
	assert.Check(t, errdefs.IsInvalidArgument(err), "a node does not migrate to itself")
	_, err = m.Expect(ctx, api.Expectation{ID: "../x", From: "h2", Container: "web.1", Network: "fleet"})
	assert.Check(t, errdefs.IsInvalidArgument(err))
	_, err = m.Expect(ctx, api.Expectation{ID: "abcdef0123", From: "h2", Container: "web.1", Network: "fleet"})
	assert.NilError(t, err)

	_, err = m.claim("abcdef0123", "h3", false)
	assert.Check(t, errdefs.IsPermissionDenied(err))
	_, err = m.claim("abcdef0123", "h2", true)
	assert.NilError(t, err)
	_, err = m.claim("abcdef0123", "h2", false)
	assert.Check(t, errdefs.IsPermissionDenied(err), "a receive ends the announcement")
}

// FuzzReceiveHeader: whatever a source sends, a header the destination
// accepts names only what was announced and only named volumes at clean
// absolute paths.
func FuzzReceiveHeader(f *testing.F) {
	f.Add([]byte(`{"id":"abcdef0123","name":"web.1","from":"h2","checkpoint":"fleet-migration","network":"fleet","config":{"Labels":{"com.docker.fleet.service":"web"}},"volumes":[{"name":"data","target":"/data"}]}`))
	f.Add([]byte(`{"id":"abcdef0123","volumes":[{"name":"/","target":"/host"}],"binds":["/:/host"]}`))
	e := expected{Expectation: api.Expectation{ID: "abcdef0123", From: "h2", Container: "web.1", Network: "fleet"}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, err := DecodeReceiveHeader(raw)
		if err != nil {
			return
		}
		if checkReceiveHeader(e, h) != nil {
			return
		}
		if h.Name != e.Container || h.From != e.From || h.Network != e.Network || h.Cores != 0 || h.Memory != 0 {
			t.Fatalf("accepted a header beyond its announcement: %+v", h)
		}
		for _, v := range h.Volumes {
			if !volumeName.MatchString(v.Name) || !strings.HasPrefix(v.Target, "/") || strings.Contains(v.Target, "..") {
				t.Fatalf("accepted volume %+v", v)
			}
		}
	})
}

// The stream may carry what the container's memory limit allows, not only
// the estimate from the memory it used at prepare: it grows until the
// freeze, which now follows the twin's creation.
func TestStreamedMemory(t *testing.T) {
	const mb = 1 << 20
	assert.Check(t, is.Equal(streamedMemory(api.PrepareRequest{Checkpoint: 100 * mb, Memory: 1024 * mb}), int64(1088*mb)))
	assert.Check(t, is.Equal(streamedMemory(api.PrepareRequest{Checkpoint: 2048 * mb, Memory: 1024 * mb}), int64(2048*mb)))
	assert.Check(t, is.Equal(streamedMemory(api.PrepareRequest{Checkpoint: 100 * mb}), int64(100*mb)))
}
