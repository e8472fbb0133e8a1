package workloads

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
)

const storeHostDir = "/var/lib/docker/fleet/secrets"

func testStore(t *testing.T) fileStore {
	return fileStore{dir: filepath.Join(t.TempDir(), "secrets"), hostDir: storeHostDir}
}

func secret(name, target string, mode uint32, content string) api.File {
	return api.File{ServiceFile: spec.ServiceFile{Kind: spec.SecretFile,
		FileMount: spec.FileMount{Name: name, Target: target, Mode: mode}}, Content: []byte(content)}
}

func config(name, target string, content string) api.File {
	return api.File{ServiceFile: spec.ServiceFile{Kind: spec.ConfigFile,
		FileMount: spec.FileMount{Name: name, Target: target, Mode: 0o444}}, Content: []byte(content)}
}

// mountPoints are the mounts as the engine reports them once made.
func mountPoints(ms []mount.Mount) []container.MountPoint {
	var out []container.MountPoint
	for _, m := range ms {
		out = append(out, container.MountPoint{Type: m.Type, Source: m.Source, Destination: m.Target, RW: !m.ReadOnly})
	}
	return out
}

// TestFilesWrittenAndReadBack: a container's files land in a directory of
// its own, with their modes, mounted read-only at their targets, and read
// back (as a migration's source does) as they were given; other mounts are
// left to the caller.
func TestFilesWrittenAndReadBack(t *testing.T) {
	s := testStore(t)
	files := []api.File{
		secret("db_password", "/run/secrets/db_password", 0o400, "hunter2"),
		secret("db_password", "/run/secrets/copy", 0o444, "hunter2"),
		config("nginx.conf", "/etc/nginx/nginx.conf", "events {}\n"),
	}
	dir, mounts, err := s.write("web.1", files)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(filepath.Dir(dir), storeHostDir))
	assert.Assert(t, is.Len(mounts, 3))
	for i, m := range mounts {
		assert.Check(t, is.Equal(m.Type, mount.TypeBind))
		assert.Check(t, m.ReadOnly)
		assert.Check(t, is.Equal(m.Target, files[i].Target))
		assert.Check(t, is.Equal(filepath.Dir(m.Source), dir), "every file in the container's directory")
	}
	st, err := os.Stat(s.dir)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Mode().Perm(), os.FileMode(0o700)), "only the agent reads the store")
	own := filepath.Join(s.dir, filepath.Base(dir))
	st, err = os.Stat(own)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Mode().Perm(), os.FileMode(0o700)))
	st, err = os.Stat(filepath.Join(own, filepath.Base(mounts[0].Source)))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Mode().Perm(), os.FileMode(0o400)))

	volume := container.MountPoint{Type: mount.TypeVolume, Name: "data", Source: "/var/lib/docker/volumes/data/_data", Destination: "/data"}
	got, gotDir, rest, err := s.read(append(mountPoints(mounts), volume))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(gotDir, dir))
	assert.Check(t, is.DeepEqual(rest, []container.MountPoint{volume}))
	assert.Check(t, is.DeepEqual(got, files))

	assert.NilError(t, s.remove(dir))
	_, err = os.Stat(own)
	assert.Check(t, os.IsNotExist(err))
}

// TestFilesRefused: nothing is written for a file whose name would leave
// its directory or whose target is not where such a file may go.
func TestFilesRefused(t *testing.T) {
	for name, f := range map[string]api.File{
		"parent name":         secret("../x", "/run/secrets/x", 0o444, "x"),
		"dot-dot name":        secret("..", "/run/secrets/x", 0o444, "x"),
		"name with a slash":   secret("a/b", "/run/secrets/x", 0o444, "x"),
		"secret outside /run": secret("x", "/etc/shadow", 0o444, "x"),
		"secret leaves /run":  secret("x", "/run/secrets/../../etc/shadow", 0o444, "x"),
		"relative target":     config("x", "etc/x", "x"),
		"setuid mode":         secret("x", "/run/secrets/x", 0o4755, "x"),
		"too large":           secret("x", "/run/secrets/x", 0o444, string(make([]byte, spec.MaxFilesBytes+1))),
	} {
		s := testStore(t)
		_, _, err := s.write("web.1", []api.File{f})
		assert.Check(t, errdefs.IsInvalidArgument(err), "%s: %v", name, err)
		_, err = os.Stat(s.dir)
		assert.Check(t, os.IsNotExist(err), "%s: the store was touched", name)
	}
	_, _, err := testStore(t).write("../web.1", []api.File{secret("x", "/run/secrets/x", 0o444, "x")})
	assert.Check(t, err != nil, "a container name with a slash")
}

// TestFilesReadRefusesStrangers: a bind mount under the store that is not
// one of the fleet's files, or a link planted in its place, is not read.
func TestFilesReadRefusesStrangers(t *testing.T) {
	s := testStore(t)
	dir, mounts, err := s.write("web.1", []api.File{secret("x", "/run/secrets/x", 0o444, "x")})
	assert.NilError(t, err)

	stranger := container.MountPoint{Type: mount.TypeBind, Source: dir + "/passwd", Destination: "/etc/passwd"}
	_, _, _, err = s.read([]container.MountPoint{stranger})
	assert.Check(t, is.ErrorContains(err, "none of the fleet's"))

	p := filepath.Join(s.dir, filepath.Base(dir), filepath.Base(mounts[0].Source))
	assert.NilError(t, os.Remove(p))
	assert.NilError(t, os.Symlink("/etc/hostname", p))
	_, _, _, err = s.read(mountPoints(mounts))
	assert.Check(t, err != nil, "read through a link")

	assert.NilError(t, s.remove("/etc"), "outside the store: left alone")
	assert.NilError(t, s.remove(storeHostDir+"/.."))
	_, err = os.Stat(s.dir)
	assert.NilError(t, err)
}

// TestFilesFor: a replica gets its service's files from the request, and
// one that the request lacks is refused by name, with what to do.
func TestFilesFor(t *testing.T) {
	m := &Manager{Node: "h2"}
	svc := spec.Service{Name: "web", Attachments: spec.Attachments{
		Secrets: []spec.FileMount{{Name: "pw", Target: "/run/secrets/pw", Mode: 0o400}},
		Configs: []spec.FileMount{{Name: "conf", Target: "/etc/app.conf", Mode: 0o444}},
	}}
	req := api.CreateRequest{Name: "web.1", Service: svc, Files: []api.FileContent{
		{Kind: spec.SecretFile, Name: "pw", Content: []byte("hunter2")},
		{Kind: spec.ConfigFile, Name: "conf", Content: []byte("a=1")},
	}}
	files, err := m.filesFor(t.Context(), req)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(files, []api.File{
		{ServiceFile: spec.ServiceFile{Kind: spec.SecretFile, FileMount: svc.Secrets[0]}, Content: []byte("hunter2")},
		{ServiceFile: spec.ServiceFile{Kind: spec.ConfigFile, FileMount: svc.Configs[0]}, Content: []byte("a=1")},
	}))

	req.Files = req.Files[1:]
	_, err = m.filesFor(t.Context(), req)
	assert.Check(t, errdefs.IsFailedPrecondition(err))
	assert.Check(t, is.ErrorContains(err, "secret pw is not on node h2"))
	assert.Check(t, is.ErrorContains(err, "docker fleet create -f"))
}

// TestJoinable: a fleet container joins, besides the fleet network, only
// attachable overlay networks of the swarm; one this node does not know
// yet is the swarm's (a node knows all of its own).
func TestJoinable(t *testing.T) {
	overlay := func(attachable bool) *network.Network {
		return &network.Network{Name: "shop_back", Driver: "overlay", Scope: "swarm", Attachable: attachable}
	}
	assert.Check(t, joinable("shop_back", "fleet", overlay(true)) == nil)
	assert.Check(t, joinable("shop_back", "fleet", nil) == nil)
	assert.Check(t, is.ErrorContains(joinable("shop_back", "fleet", overlay(false)), "not attachable"))
	assert.Check(t, is.ErrorContains(joinable("fleet", "fleet", overlay(true)), "fleet network"))
	assert.Check(t, is.ErrorContains(joinable("host", "fleet", nil), "each host's own"))
	assert.Check(t, is.ErrorContains(joinable("br", "fleet", &network.Network{Driver: "bridge", Scope: "local"}), "not an overlay network"))
}
