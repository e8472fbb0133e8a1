package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	units "github.com/docker/go-units"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"

	"github.com/docker-fleet/fleet/daemonplugin/enginecompat"
	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
)

// Prepare answers a source: can this node take the container, and does it
// need the image? It checks the request against the operator's
// announcement and the room the stream needs before the source freezes.
func (m *Migrator) Prepare(ctx context.Context, from, id string, req api.PrepareRequest) (api.PrepareResponse, error) {
	e, err := m.claim(id, from, false)
	if err != nil {
		return api.PrepareResponse{}, err
	}
	if err := checkPrepare(e, req); err != nil {
		return api.PrepareResponse{}, err
	}
	if err := m.Workloads.CanTake(ctx, req.Cores, req.Memory); err != nil {
		return api.PrepareResponse{}, err
	}
	if err := m.checkRoom(ctx, req); err != nil {
		return api.PrepareResponse{}, err
	}
	resp := api.PrepareResponse{Holder: req.InHolder}
	if !resp.Holder {
		if resp.Holder, err = m.needsHolder(ctx); err != nil {
			return api.PrepareResponse{}, err
		}
	}
	m.prepared(id, req, resp.Holder)
	_, err = m.Engine.ImageInspect(ctx, req.ImageID)
	if err != nil && !errdefs.IsNotFound(err) {
		return api.PrepareResponse{}, err
	}
	// Not here: try the registry before asking the source to stream it.
	resp.HaveImage = err == nil || (workloads.PullImage(ctx, m.Engine, req.Image) == nil && m.haveImage(ctx, req.ImageID))
	return resp, nil
}

func (m *Migrator) haveImage(ctx context.Context, id string) bool {
	_, err := m.Engine.ImageInspect(ctx, id)
	return err == nil
}

// needsHolder says whether this node's engine restores a checkpointed
// container only into a network holder (enginecompat.NeedsNetnsHolder).
func (m *Migrator) needsHolder(ctx context.Context) (bool, error) {
	v, err := m.Engine.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return false, fmt.Errorf("engine: %w", err)
	}
	return enginecompat.NeedsNetnsHolder(v.Version), nil
}

// checkRoom refuses a migration whose files would not fit on the engine's
// disk or whose CRIU images would not fit in tmpfs.
func (m *Migrator) checkRoom(ctx context.Context, req api.PrepareRequest) error {
	info, err := m.Engine.Info(ctx, client.InfoOptions{})
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	for _, need := range []struct {
		dir, what string
		bytes     int64
	}{
		{info.Info.DockerRootDir, "the writable layer and volumes", req.Files},
		{shmDir, "the checkpoint", req.Checkpoint},
	} {
		var st unix.Statfs_t
		if err := unix.Statfs(m.host(need.dir), &st); err != nil {
			return fmt.Errorf("free space in %s: %w", need.dir, err)
		}
		if free := int64(st.Bavail) * int64(st.Bsize); need.bytes > free {
			return workloads.Refuse(errdefs.ErrResourceExhausted, "node %s has %s free in %s, %s needs %s",
				m.Node, units.BytesSize(float64(free)), need.dir, need.what, units.BytesSize(float64(need.bytes)))
		}
	}
	return nil
}

// LoadImage loads an image streamed by the source of an announced
// migration.
func (m *Migrator) LoadImage(ctx context.Context, from, id string, body io.Reader) error {
	e, err := m.claim(id, from, false)
	if err != nil {
		return err
	}
	if e.limit == 0 {
		return workloads.Refuse(errdefs.ErrFailedPrecondition, "migration %s: image before prepare", id)
	}
	res, err := m.Engine.ImageLoad(ctx, onlyTag(io.LimitReader(body, MaxTransfer), e.image))
	if err != nil {
		return err
	}
	defer res.Close()
	_, err = io.Copy(io.Discard, res)
	return err
}

// Receive creates the twin, fills it from the stream, and restores it.
// Whatever fails, the twin and any volume made for it are removed and the
// source told why.
func (m *Migrator) Receive(ctx context.Context, from string, h api.ReceiveHeader, body io.Reader, trailer func() string) (api.ReceiveResult, error) {
	e, err := m.claim(h.ID, from, true)
	if err != nil {
		return api.ReceiveResult{}, err
	}
	if err := checkReceiveHeader(e, h); err != nil {
		return api.ReceiveResult{}, err
	}
	if e.limit == 0 {
		return api.ReceiveResult{}, workloads.Refuse(errdefs.ErrFailedPrecondition, "migration %s: receive before prepare", h.ID)
	}
	// A holder's namespace stays locked until the sockets are back in it:
	// a peer's packet would be answered with a reset.
	var lockHolder func(int) error
	if e.holder {
		lockHolder = func(pid int) error { return lockNetwork(ctx, pid) }
	}
	twin, err := m.Workloads.CreateTwin(ctx, h, lockHolder)
	if err != nil {
		return api.ReceiveResult{}, err
	}
	ok := false
	defer func() {
		if !ok {
			m.Workloads.RemoveTwin(context.WithoutCancel(ctx), twin)
		}
	}()
	// The fast path keeps the images in tmpfs, the engine path in the
	// engine's checkpoint directory.
	imgDir := filepath.Join(shmDir, "fleet-migration-"+h.ID+"-in")
	defer os.RemoveAll(m.host(imgDir))
	cpDir := m.host(imgDir)
	if !h.ImagesDir {
		if cpDir, err = m.checkpointDir(ctx, twin.ID); err != nil {
			return api.ReceiveResult{}, err
		}
	}
	if err := os.MkdirAll(cpDir, 0o700); err != nil {
		return api.ReceiveResult{}, err
	}
	x := &extractor{limit: e.limit, dir: func(section, name string) (string, error) {
		switch section + "/" {
		case api.SectionRootfs:
			return m.host(twin.UpperDir), nil
		case api.SectionCheckpoint:
			return cpDir, nil
		case api.SectionVolumes:
			mp, ok := twin.Volumes[name]
			if !ok {
				return "", fmt.Errorf("%w: volume %q was not announced", errUnsafe, name)
			}
			return m.host(mp), nil
		}
		return "", fmt.Errorf("%w: section %q", errUnsafe, section)
	}}
	sum := sha256.New()
	if err := x.extract(io.TeeReader(body, sum)); err != nil {
		return api.ReceiveResult{}, fmt.Errorf("receiving %s: %w", h.Name, err)
	}
	// Read to the end so the trailer arrives: past the archive there is
	// only its padding.
	if n, err := io.Copy(sum, io.LimitReader(body, maxPadding+1)); err != nil || n > maxPadding {
		return api.ReceiveResult{}, fmt.Errorf("receiving %s: %d bytes after the end of the archive (%v)", h.Name, n, err)
	}
	if got, want := hex.EncodeToString(sum.Sum(nil)), trailer(); got != want {
		return api.ReceiveResult{}, workloads.Refuse(errdefs.ErrInvalidArgument,
			"receiving %s: the stream is corrupt (SHA-256 %s, the source sent %q)", h.Name, got, want)
	}
	if err := m.restore(ctx, twin.ID, h.Name, h.ImagesDir, imgDir); err != nil {
		return api.ReceiveResult{}, fmt.Errorf("restoring %s on %s: %w", h.Name, m.Node, err)
	}
	ok = true
	if twin.HolderPid != 0 {
		unlockNetwork(ctx, twin.HolderPid)
	} else if res, err := m.Engine.ContainerInspect(ctx, twin.ID, client.ContainerInspectOptions{}); err == nil {
		unlockNetwork(ctx, res.Container.State.Pid)
	}
	result := api.ReceiveResult{ContainerID: twin.ID, Cpuset: twin.Cpuset, IP: h.IP, Volumes: twin.Renamed,
		Restore: m.restoreStats(ctx, twin.ID, cpDir)}
	_, _ = m.Engine.CheckpointRemove(ctx, twin.ID, client.CheckpointRemoveOptions{CheckpointID: h.Checkpoint})
	return result, nil
}

// maxPadding bounds what may follow a stream's archive (tar pads to its
// record size).
const maxPadding = 64 << 10

// restoreStats reads CRIU's restore stats, which it leaves in its work
// directory: the images directory unless runc named one in the restored
// container's bundle.
func (m *Migrator) restoreStats(ctx context.Context, id, imgDir string) *api.RestoreStats {
	if s := restoreStats(imgDir); s != nil {
		return s
	}
	res, err := m.Engine.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return nil
	}
	b, err := bundle(res.Container.State.Pid)
	if err != nil {
		return nil
	}
	// The bundle's "work" links to the shim's work directory on the host.
	work := filepath.Join(b, "work")
	if target, err := os.Readlink(m.host(work)); err == nil {
		work = target
	}
	return restoreStats(m.host(work))
}
