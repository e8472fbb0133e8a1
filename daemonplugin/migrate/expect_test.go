package migrate

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/spec"
)

func TestCheckReceiveHeader(t *testing.T) {
	e := expected{Expectation: api.Expectation{ID: "abcdef0123", From: "h2", Container: "web.1", Network: "fleet", Cores: 2, Memory: 1 << 30}}
	good := api.ReceiveHeader{ID: "abcdef0123", Name: "web.1", From: "h2", Checkpoint: checkpointName, Network: "fleet",
		Cores: 2, Memory: 1 << 30, Config: container.Config{Labels: map[string]string{labels.Service: "web"}},
		Volumes: []api.VolumeMount{{Name: "data", Target: "/data"}},
		Extra:   []api.Endpoint{{Network: "shop_back", IP: "10.217.2.5", Aliases: []string{"web", "web.1"}}},
		Files: []api.File{
			{ServiceFile: spec.ServiceFile{Kind: spec.SecretFile, FileMount: spec.FileMount{Name: "db_password", Target: "/run/secrets/db_password", Mode: 0o400}}, Content: []byte("s3cret")},
			{ServiceFile: spec.ServiceFile{Kind: spec.ConfigFile, FileMount: spec.FileMount{Name: "nginx.conf", Target: "/etc/nginx/nginx.conf", Mode: 0o444}}, Content: []byte("events {}")},
		}}
	assert.NilError(t, checkReceiveHeader(e, good, fakeJoinable))

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

		"extra host network":      func(h *api.ReceiveHeader) { h.Extra[0].Network = "host" },
		"extra local network":     func(h *api.ReceiveHeader) { h.Extra[0].Network = "localbr" },
		"extra not attachable":    func(h *api.ReceiveHeader) { h.Extra[0].Network = "ingress" },
		"extra is the fleet's":    func(h *api.ReceiveHeader) { h.Extra[0].Network = "fleet" },
		"extra twice":             func(h *api.ReceiveHeader) { h.Extra = append(h.Extra, h.Extra[0]) },
		"extra without address":   func(h *api.ReceiveHeader) { h.Extra[0].IP = "" },
		"extra bad alias":         func(h *api.ReceiveHeader) { h.Extra[0].Aliases = []string{"a b"} },
		"extra bad name":          func(h *api.ReceiveHeader) { h.Extra[0].Network = "../x" },
		"too many networks":       func(h *api.ReceiveHeader) { h.Extra = manyEndpoints(maxExtra + 1) },
		"secret name leaves":      func(h *api.ReceiveHeader) { h.Files[0].Name = "../x" },
		"secret name is dot-dot":  func(h *api.ReceiveHeader) { h.Files[0].Name = ".." },
		"secret outside /run":     func(h *api.ReceiveHeader) { h.Files[0].Target = "/etc/shadow" },
		"secret at /run/secrets":  func(h *api.ReceiveHeader) { h.Files[0].Target = "/run/secrets" },
		"secret unclean target":   func(h *api.ReceiveHeader) { h.Files[0].Target = "/run/secrets/../../etc/passwd" },
		"config relative target":  func(h *api.ReceiveHeader) { h.Files[1].Target = "etc/x" },
		"config at /":             func(h *api.ReceiveHeader) { h.Files[1].Target = "/" },
		"file of another kind":    func(h *api.ReceiveHeader) { h.Files[1].Kind = "bind" },
		"file mode beyond perms":  func(h *api.ReceiveHeader) { h.Files[0].Mode = 0o4755 },
		"file owner not a number": func(h *api.ReceiveHeader) { h.Files[0].UID = "root" },
		"two files at one target": func(h *api.ReceiveHeader) { h.Files[1].Target = h.Files[0].Target },
		"file over a volume":      func(h *api.ReceiveHeader) { h.Files[1].Target = "/data" },
		"files too large":         func(h *api.ReceiveHeader) { h.Files[0].Content = make([]byte, spec.MaxFilesBytes) },
		"too many files":          func(h *api.ReceiveHeader) { h.Files = manyFiles(spec.MaxFiles + 1) },
	} {
		h := good
		h.Volumes = append([]api.VolumeMount{}, good.Volumes...)
		h.Extra = append([]api.Endpoint{}, good.Extra...)
		h.Files = append([]api.File{}, good.Files...)
		h.Config.Labels = map[string]string{labels.Service: "web"}
		mutate(&h)
		err := checkReceiveHeader(e, h, fakeJoinable)
		assert.Check(t, errdefs.IsPermissionDenied(err), "%s: %v", name, err)
		assert.Check(t, is.ErrorContains(err, "refused migration"), name)
	}
}

// fakeJoinable is JoinableNetwork on a node whose engine knows the local
// bridge "localbr" and the swarm's non-attachable "ingress".
func fakeJoinable(name string) error {
	switch name {
	case "host", "localbr", "ingress", "fleet":
		return workloads.Refuse(errdefs.ErrPermissionDenied, "network %s may not be joined", name)
	}
	return nil
}

func manyEndpoints(n int) []api.Endpoint {
	var eps []api.Endpoint
	for i := range n {
		eps = append(eps, api.Endpoint{Network: fmt.Sprintf("net%d", i), IP: fmt.Sprintf("10.217.%d.5", i)})
	}
	return eps
}

func manyFiles(n int) []api.File {
	var fs []api.File
	for i := range n {
		name := fmt.Sprintf("s%d", i)
		fs = append(fs, api.File{ServiceFile: spec.ServiceFile{Kind: spec.SecretFile, FileMount: spec.FileMount{Name: name, Target: "/run/secrets/" + name}}})
	}
	return fs
}

// A destination that cannot look its networks up is not a refusal of the
// header: the error is the engine's.
func TestCheckReceiveHeaderEngineError(t *testing.T) {
	e := expected{Expectation: api.Expectation{ID: "abcdef0123", From: "h2", Container: "web.1", Network: "fleet"}}
	h := api.ReceiveHeader{ID: "abcdef0123", Name: "web.1", From: "h2", Checkpoint: checkpointName, Network: "fleet",
		Config: container.Config{Labels: map[string]string{labels.Service: "web"}},
		Extra:  []api.Endpoint{{Network: "shop_back", IP: "10.217.2.5"}}}
	err := checkReceiveHeader(e, h, func(string) error { return errors.New("engine: connection refused") })
	assert.Check(t, is.ErrorContains(err, "connection refused"))
	assert.Check(t, !errdefs.IsPermissionDenied(err))
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
	f.Add([]byte(`{"id":"abcdef0123","name":"web.1","from":"h2","checkpoint":"fleet-migration","network":"fleet","config":{"Labels":{"com.docker.fleet.service":"web"}},"extra":[{"network":"host","ip":"10.0.0.2"}],"files":[{"kind":"secret","name":"../../etc/shadow","target":"/run/secrets/x","mode":420,"content":"eA=="}]}`))
	e := expected{Expectation: api.Expectation{ID: "abcdef0123", From: "h2", Container: "web.1", Network: "fleet"}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, err := DecodeReceiveHeader(raw)
		if err != nil {
			return
		}
		if checkReceiveHeader(e, h, fakeJoinable) != nil {
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
		for _, f := range h.Files {
			if strings.Contains(f.Name, "/") || strings.HasPrefix(f.Name, ".") || !strings.HasPrefix(f.Target, "/") || strings.Contains(f.Target, "..") ||
				(f.Kind == spec.SecretFile && !strings.HasPrefix(f.Target, spec.SecretsDir+"/")) {
				t.Fatalf("accepted file %+v", f.ServiceFile)
			}
		}
		for _, ep := range h.Extra {
			if ep.Network == h.Network || fakeJoinable(ep.Network) != nil {
				t.Fatalf("accepted network %+v", ep)
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

// TestPrivilegesComeFromTheAnnouncement: a peer's header gives the twin
// no capability its service's announcement does not, and the log driver
// is the announcement's, never the header's.
func TestPrivilegesComeFromTheAnnouncement(t *testing.T) {
	hc := &container.HostConfig{CapAdd: []string{"CAP_NET_ADMIN"},
		LogConfig: container.LogConfig{Type: "syslog", Config: map[string]string{"syslog-address": "tcp://evil:514"}}}
	assert.Check(t, errdefs.IsPermissionDenied(checkPrivileges(nil, hc)), "no announcement: no capability")
	assert.Check(t, errdefs.IsPermissionDenied(checkPrivileges(&api.Privileges{CapAdd: []string{"SYS_ADMIN"}}, hc)))
	assert.NilError(t, checkPrivileges(&api.Privileges{CapAdd: []string{"net_admin"}}, hc))
	assert.NilError(t, checkPrivileges(nil, &container.HostConfig{}))
	// Turning seccomp, AppArmor or SELinux off is vouched for as a capability is.
	unconfined := &container.HostConfig{SecurityOpt: []string{"no-new-privileges", "seccomp:unconfined"}}
	assert.Check(t, errdefs.IsPermissionDenied(checkPrivileges(nil, unconfined)), "no announcement: confined")
	assert.Check(t, errdefs.IsPermissionDenied(checkPrivileges(&api.Privileges{Unconfined: []string{"apparmor=unconfined"}}, unconfined)))
	assert.NilError(t, checkPrivileges(&api.Privileges{Unconfined: []string{"seccomp=unconfined"}}, unconfined))
	assert.NilError(t, checkPrivileges(nil, &container.HostConfig{SecurityOpt: []string{"no-new-privileges"}}))

	h := api.ReceiveHeader{HostConfig: hc}
	withAnnouncedLogging(&h, &api.Privileges{CapAdd: []string{"NET_ADMIN"}})
	assert.Check(t, is.DeepEqual(h.HostConfig.LogConfig, container.LogConfig{}), "the engine's default, not the peer's")
	withAnnouncedLogging(&h, &api.Privileges{Logging: &spec.Logging{Driver: "json-file", Options: map[string]string{"max-size": "1m"}}})
	assert.Check(t, is.DeepEqual(h.HostConfig.LogConfig, container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1m"}}))
}
