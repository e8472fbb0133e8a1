package workloads

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/spec"
)

// A fleet container's secrets and configs (Compose's secrets: and
// configs:) are files the agent writes for it, from the contents that come
// with its create (read by the CLI) or with a migration's header, and
// bind-mounts read-only at their targets. Each container has a directory
// of its own under the engine's data root, DATA_ROOT/fleet/secrets/
// NAME-NNNN/, which only the agent reads (0700; the container sees each
// file's own owner and mode): docker inspect shows a mount's source path,
// never the content. The directory goes with its container; one whose
// container is gone is removed when the agent starts.

// filesUnderDataRoot is where the files are under the engine's data root.
const filesUnderDataRoot = "fleet/secrets"

// fileStore is the containers' files: dir as the agent sees it, hostDir
// as the engine does (the bind mounts' sources).
type fileStore struct{ dir, hostDir string }

func (m *Manager) fileStore(ctx context.Context) (fileStore, error) {
	if m.FilesDir == "" {
		return fileStore{}, Refuse(errdefs.ErrFailedPrecondition, "node %s keeps no secrets or configs", m.Node)
	}
	info, err := m.Engine.Info(ctx, client.InfoOptions{})
	if err != nil {
		return fileStore{}, fmt.Errorf("engine: %w", err)
	}
	return fileStore{dir: m.FilesDir, hostDir: path.Join(info.Info.DockerRootDir, filesUnderDataRoot)}, nil
}

// write writes a container's files into a fresh directory of its own; it
// returns that directory as the engine sees it and the mounts that give
// the files to the container.
func (s fileStore) write(name string, files []api.File) (string, []mount.Mount, error) {
	if err := api.CheckFiles(files); err != nil {
		return "", nil, Refuse(errdefs.ErrInvalidArgument, "%s: %v", name, err)
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return "", nil, err
	}
	if err := os.Chmod(s.dir, 0o700); err != nil {
		return "", nil, err
	}
	d, err := os.MkdirTemp(s.dir, name+"-")
	if err != nil {
		return "", nil, err
	}
	var mounts []mount.Mount
	for i, f := range files {
		file := fileName(f.Kind, i, f.Name)
		if err := writeFile(filepath.Join(d, file), f); err != nil {
			_ = os.RemoveAll(d)
			return "", nil, fmt.Errorf("writing %s %s of %s: %w", f.Kind, f.Name, name, err)
		}
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: path.Join(s.hostDir, filepath.Base(d), file),
			Target: f.Target, ReadOnly: true})
	}
	return path.Join(s.hostDir, filepath.Base(d)), mounts, nil
}

// fileName is a file's name in its container's directory: its kind, its
// place among the container's files (a secret may be mounted twice) and
// its name, which api.CheckFiles has kept from holding a '/'.
func fileName(kind string, i int, name string) string {
	return kind + "." + strconv.Itoa(i) + "." + name
}

// parseFileName reads a fileName.
func parseFileName(file string) (kind, name string, ok bool) {
	kind, rest, ok1 := strings.Cut(file, ".")
	_, name, ok2 := strings.Cut(rest, ".")
	return kind, name, ok1 && ok2 && (kind == spec.SecretFile || kind == spec.ConfigFile)
}

// writeFile creates one file, never through a link, with its owner and
// mode.
func writeFile(p string, f api.File) error {
	w, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = w.Write(f.Content)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if uid, gid := owner(f.UID), owner(f.GID); uid != -1 || gid != -1 {
		if err := os.Lchown(p, uid, gid); err != nil {
			return err
		}
	}
	return os.Chmod(p, fs.FileMode(f.Mode))
}

// owner is a numeric user or group, -1 (unchanged: root) when unset.
func owner(id string) int {
	n, err := strconv.Atoi(id)
	if err != nil {
		return -1
	}
	return n
}

// owns says whether a mount is one of the store's files: sub is its
// container's directory, file its name there.
func (s fileStore) owns(mp container.MountPoint) (sub, file string, ok bool) {
	rel, ours := strings.CutPrefix(mp.Source, s.hostDir+"/")
	if mp.Type != mount.TypeBind || !ours {
		return "", "", false
	}
	sub, file, _ = strings.Cut(rel, "/")
	return sub, file, true
}

// read reads back the files a container's mounts give it from the store,
// with their contents, owners and modes. rest are its other mounts; dir is
// its files' directory as the engine sees it ("" without files).
func (s fileStore) read(mounts []container.MountPoint) (files []api.File, dir string, rest []container.MountPoint, err error) {
	for _, mp := range mounts {
		sub, file, ours := s.owns(mp)
		if !ours {
			rest = append(rest, mp)
			continue
		}
		kind, name, ok := parseFileName(file)
		if !ok || strings.Contains(file, "/") || (dir != "" && sub != dir) {
			return nil, "", nil, fmt.Errorf("%s under %s is none of the fleet's secrets or configs", mp.Source, s.hostDir)
		}
		dir = sub
		f, err := readFile(filepath.Join(s.dir, sub, file))
		if err != nil {
			return nil, "", nil, fmt.Errorf("%s %s: %w", kind, name, err)
		}
		f.Kind, f.Name, f.Target = kind, name, mp.Destination
		files = append(files, f)
	}
	if dir != "" {
		dir = path.Join(s.hostDir, dir)
	}
	return files, dir, rest, nil
}

// readFile reads one file of the store, never through a link, and no more
// than a container's files may hold.
func readFile(p string) (api.File, error) {
	var f api.File
	r, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return f, err
	}
	defer r.Close()
	st, err := r.Stat()
	if err != nil {
		return f, err
	}
	if !st.Mode().IsRegular() {
		return f, fmt.Errorf("%s is not a file", p)
	}
	if f.Content, err = io.ReadAll(io.LimitReader(r, spec.MaxFilesBytes+1)); err != nil {
		return f, err
	}
	if len(f.Content) > spec.MaxFilesBytes {
		return f, fmt.Errorf("%s holds more than %d bytes", p, spec.MaxFilesBytes)
	}
	f.Mode = uint32(st.Mode().Perm())
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		f.UID, f.GID = idOf(sys.Uid), idOf(sys.Gid)
	}
	return f, nil
}

// idOf is a file's owner as a FileMount gives it: root is unset.
func idOf(id uint32) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(id), 10)
}

// remove removes a container's directory (dir as the engine sees it); a
// path outside the store is left alone.
func (s fileStore) remove(dir string) error {
	sub, ok := strings.CutPrefix(dir, s.hostDir+"/")
	if !ok || sub == "" || sub == "." || sub == ".." || strings.Contains(sub, "/") {
		return nil
	}
	return os.RemoveAll(filepath.Join(s.dir, sub))
}

// FileMounts splits a container's mounts into its secrets and configs
// (read back with their contents, for a migration's twin) and the rest;
// dir is its files' directory as the engine sees it ("" without files).
func (m *Manager) FileMounts(ctx context.Context, mounts []container.MountPoint) (files []api.File, dir string, rest []container.MountPoint, err error) {
	if !hasBind(mounts) || m.FilesDir == "" {
		return nil, "", mounts, nil
	}
	s, err := m.fileStore(ctx)
	if err != nil {
		return nil, "", nil, err
	}
	return s.read(mounts)
}

func hasBind(mounts []container.MountPoint) bool {
	for _, mp := range mounts {
		if mp.Type == mount.TypeBind {
			return true
		}
	}
	return false
}

// RemoveFiles removes a container's files once the container is gone (dir
// as FileMounts gave it). What fails is left to the next start's cleanup.
func (m *Manager) RemoveFiles(ctx context.Context, dir string) {
	if dir == "" {
		return
	}
	s, err := m.fileStore(ctx)
	if err == nil {
		err = s.remove(dir)
	}
	if err != nil {
		log.Printf("removing the secrets and configs in %s: %v", dir, err)
	}
}

// filesFor gives a new replica its service's secrets and configs: their
// contents from the request, or, when it brings none (scale, a cold
// relocation), from another replica of the service on this node.
func (m *Manager) filesFor(ctx context.Context, req api.CreateRequest) ([]api.File, error) {
	want := req.Service.Files()
	if len(want) == 0 {
		return nil, nil
	}
	have := map[fileKey][]byte{}
	for _, c := range req.Files {
		have[fileKey{c.Kind, c.Name}] = c.Content
	}
	if len(req.Files) == 0 {
		if err := m.contentsHere(ctx, req.Service.Name, have); err != nil {
			return nil, err
		}
	}
	files := make([]api.File, 0, len(want))
	for _, f := range want {
		content, ok := have[fileKey{f.Kind, f.Name}]
		if !ok {
			return nil, Refuse(errdefs.ErrFailedPrecondition,
				"%s: the content of %s %s is not on node %s, whose agent keeps it only for the replicas of %s it runs: recreate the service with docker fleet create -f (after docker fleet rm %s)",
				req.Name, f.Kind, f.Name, m.Node, req.Service.Name, req.Service.Name)
		}
		files = append(files, api.File{ServiceFile: f, Content: content})
	}
	return files, nil
}

type fileKey struct{ kind, name string }

// contentsHere adds to have the contents of the files of service's
// replicas on this node.
func (m *Manager) contentsHere(ctx context.Context, service string, have map[fileKey][]byte) error {
	list, err := m.Engine.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", labels.Service+"="+service)})
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	for _, c := range list.Items {
		files, _, _, err := m.FileMounts(ctx, c.Mounts)
		if err != nil {
			return err
		}
		for _, f := range files {
			have[fileKey{f.Kind, f.Name}] = f.Content
		}
	}
	return nil
}

// cleanupFiles removes the directories of containers that are gone: left
// by an agent that died between writing them and making the container, or
// removing both.
func (m *Manager) cleanupFiles(ctx context.Context) {
	if m.FilesDir == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.fileStore(ctx)
	if err != nil {
		return
	}
	list, err := m.Engine.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return
	}
	used := map[string]bool{}
	for _, c := range list.Items {
		for _, mp := range c.Mounts {
			if sub, _, ours := s.owns(mp); ours {
				used[sub] = true
			}
		}
	}
	entries, _ := os.ReadDir(s.dir)
	for _, e := range entries {
		if !used[e.Name()] {
			_ = s.remove(path.Join(s.hostDir, e.Name()))
		}
	}
}
