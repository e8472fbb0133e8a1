package migrate

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/containerd/errdefs"
	units "github.com/docker/go-units"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"

	"github.com/docker-fleet/fleet/daemonplugin/enginecompat"
	"github.com/docker-fleet/fleet/daemonplugin/images"
	"github.com/docker-fleet/fleet/daemonplugin/journal"
	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
)

// Prepare answers a source: can this node take the container, and does it
// need the image? It checks the request against the operator's
// announcement and the room the stream needs before the source freezes.
func (m *Migrator) Prepare(ctx context.Context, from, id string, req api.PrepareRequest) (api.PrepareResponse, error) {
	if err := m.Accepting(); err != nil {
		return api.PrepareResponse{}, err
	}
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
	resp := api.PrepareResponse{Holder: req.InHolder, API: api.APIVersion}
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
	if err == nil {
		// The image is here, perhaps under another name only (two
		// services built alike): the twin is made by the container's.
		if err := m.tagIfMissing(ctx, req.Image, req.ImageID); err != nil {
			return api.PrepareResponse{}, err
		}
	}
	// Not here: try the registry before asking the source to stream it.
	resp.HaveImage = err == nil || (workloads.PullImage(ctx, m.Engine, req.Image) == nil && m.haveImage(ctx, req.ImageID))
	// Last: a prepare that fails holds no room.
	if err := m.reserve(id, req.Checkpoint); err != nil {
		return api.PrepareResponse{}, err
	}
	return resp, nil
}

// tagIfMissing names image id ref, where no image here has that name (one
// that has it is never renamed: the twin then runs that one, as a pull
// would have it).
func (m *Migrator) tagIfMissing(ctx context.Context, ref, id string) error {
	if images.FleetOwn(ref) {
		return nil
	}
	if _, err := m.Engine.ImageInspect(ctx, ref); !errdefs.IsNotFound(err) {
		return err
	}
	if _, err := m.Engine.ImageTag(ctx, client.ImageTagOptions{Source: id, Target: ref}); err != nil {
		return fmt.Errorf("naming image %s %s on %s: %w", id, ref, m.Node, err)
	}
	return nil
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
	res, err := m.Engine.ImageLoad(ctx, images.OnlyTag(io.LimitReader(body, MaxTransfer), e.image))
	if err != nil {
		return err
	}
	defer res.Close()
	_, err = io.Copy(io.Discard, res)
	return err
}

// Receive creates the twin, fills it from the stream and restores it
// fenced: its network stays locked until the source's decision (Decide),
// so that until then only one copy of the container can be heard. Whatever
// fails before the restore, the twin and any volume made for it are
// removed and the source told why.
func (m *Migrator) Receive(ctx context.Context, from string, h api.ReceiveHeader, body io.Reader, trailer func() string) (api.ReceiveResult, error) {
	// Announced, then active before the announcement is used up: a drain
	// (Drain) sees the migration either prepared or active, never neither.
	if _, err := m.claim(h.ID, from, false); err != nil {
		return api.ReceiveResult{}, err
	}
	done, err := m.begin(h.ID, h.Name)
	if err != nil {
		return api.ReceiveResult{}, err
	}
	defer done()
	e, err := m.claim(h.ID, from, true)
	if err != nil {
		return api.ReceiveResult{}, err
	}
	if err := checkReceiveHeader(e, h, m.joinable(ctx, h.Network)); err != nil {
		return api.ReceiveResult{}, err
	}
	withAnnouncedLogging(&h, e.Privileges)
	if e.limit == 0 {
		return api.ReceiveResult{}, workloads.Refuse(errdefs.ErrFailedPrecondition, "migration %s: receive before prepare", h.ID)
	}
	// The fast path keeps the images in tmpfs, the engine path in the
	// engine's checkpoint directory.
	imgDir := m.workDir(h.ID, "-in")
	m.takeReserve(h.ID, h.ImagesDir)
	defer m.removeDirs(imgDir)
	var twin *workloads.Twin
	restored := false
	defer func() {
		if twin != nil && !restored {
			m.dropTwin(context.WithoutCancel(ctx), h.ID, twin)
		}
	}()
	// The twin is made before the body is asked for (the source freezes
	// its container only then); a network holder takes the container's
	// address, free only once the source has frozen it and sends.
	var twinTime float64
	if !e.holder {
		if twin, err = m.createTwin(ctx, e, h, imgDir); err != nil {
			return api.ReceiveResult{}, err
		}
	}
	if err := m.fault(ctx, "dest:ready"); err != nil {
		return api.ReceiveResult{}, err
	}
	br := bufio.NewReaderSize(body, 256<<10)
	if _, err := br.Peek(1); err != nil {
		return api.ReceiveResult{}, fmt.Errorf("receiving %s: no stream from %s: %w", h.Name, h.From, err)
	}
	if e.holder {
		t0 := time.Now()
		if twin, err = m.createTwin(ctx, e, h, imgDir); err != nil {
			return api.ReceiveResult{}, err
		}
		twinTime = time.Since(t0).Seconds()
	}
	if err := m.fault(ctx, "dest:receiving"); err != nil {
		return api.ReceiveResult{}, err
	}
	cpDir, err := m.fill(ctx, e, h, twin, imgDir, br, trailer)
	if err != nil {
		return api.ReceiveResult{}, err
	}
	if err := m.fault(ctx, "dest:restoring"); err != nil {
		return api.ReceiveResult{}, err
	}
	t1 := time.Now()
	if err := m.restore(ctx, twin.ID, h.Name, h.ImagesDir, imgDir); err != nil {
		return api.ReceiveResult{}, fmt.Errorf("restoring %s on %s: %w", h.Name, m.Node, err)
	}
	// In the frozen window: the inspect only for a container with
	// sysctls (its header carries them).
	if h.HostConfig != nil && len(h.HostConfig.Sysctls) > 0 {
		if err := m.restoreSysctls(ctx, twin.ID); err != nil {
			return api.ReceiveResult{}, fmt.Errorf("restoring %s on %s: %w", h.Name, m.Node, err)
		}
	}
	restoreTime := time.Since(t1).Seconds()
	if !h.ImagesDir {
		// The engine's checkpoint brings no lock of the agent's along: a
		// copy that cannot be fenced is no copy to keep.
		if err := lockNetwork(ctx, m.fencedPid(ctx, twin.ID, twin.HolderID)); err != nil {
			return api.ReceiveResult{}, fmt.Errorf("fencing %s on %s: %w", h.Name, m.Node, err)
		}
	}
	m.holdNetwork(ctx, h.ID, m.fencedPid(ctx, twin.ID, twin.HolderID))
	if err := m.Journal.Set(h.ID, journal.Restored); err != nil {
		return api.ReceiveResult{}, err
	}
	restored = true
	result := api.ReceiveResult{ContainerID: twin.ID, Cpuset: twin.Cpuset, IP: h.IP, Volumes: twin.Renamed,
		Restore: m.restoreStats(ctx, twin.ID, cpDir), Twin: twinTime, Restored: restoreTime}
	_, _ = m.Engine.CheckpointRemove(ctx, twin.ID, client.CheckpointRemoveOptions{CheckpointID: h.Checkpoint})
	if err := m.fault(ctx, "dest:restored"); err != nil {
		// The copy stays fenced; the source's decision settles it.
		return api.ReceiveResult{}, err
	}
	return result, nil
}

// createTwin journals the migration and creates the twin (with its holder
// where one is needed, locked from its start).
func (m *Migrator) createTwin(ctx context.Context, e expected, h api.ReceiveHeader, imgDir string) (*workloads.Twin, error) {
	rec := journal.DestRecord{Dirs: []string{imgDir}, Restart: restartOf(h.HostConfig)}
	entry := journal.Entry{ID: h.ID, Role: journal.Destination, State: journal.Receiving, Container: h.Name,
		Peer: h.From, PeerAddr: e.FromAddr, Dest: &rec}
	if err := m.Journal.Put(entry); err != nil {
		return nil, err
	}
	var lockHolder func(int) error
	if e.holder {
		lockHolder = func(pid int) error { return lockNetwork(ctx, pid) }
	}
	twin, err := m.Workloads.CreateTwin(ctx, h, lockHolder)
	if err != nil {
		_ = m.Journal.Remove(h.ID)
		return nil, err
	}
	rec.TwinID, rec.HolderID, rec.Volumes, rec.FilesDir = twin.ID, twin.HolderID, twin.CreatedVolumes, twin.FilesDir
	if err := m.Journal.Put(entry); err != nil {
		m.Workloads.RemoveTwin(context.WithoutCancel(ctx), twin)
		_ = m.Journal.Remove(h.ID)
		return nil, err
	}
	return twin, nil
}

// dropTwin removes a twin that is not the container, and forgets it.
func (m *Migrator) dropTwin(ctx context.Context, id string, twin *workloads.Twin) {
	m.dropHold(id)
	m.Workloads.RemoveTwin(ctx, twin)
	_ = m.Journal.Remove(id)
}

// fill writes the stream into the twin's writable layer, its volumes and
// the checkpoint directory, and checks it whole; it returns where the
// CRIU images are.
func (m *Migrator) fill(ctx context.Context, e expected, h api.ReceiveHeader, twin *workloads.Twin, imgDir string, body io.Reader, trailer func() string) (string, error) {
	cpDir := m.host(imgDir)
	if !h.ImagesDir {
		var err error
		if cpDir, err = m.checkpointDir(ctx, twin.ID); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(cpDir, 0o700); err != nil {
		return "", err
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
	if h.ImagesDir {
		x.reserveSection = api.SectionCheckpoint
	}
	sum := newStreamSum()
	if err := x.extract(io.TeeReader(body, sum)); err != nil {
		return "", fmt.Errorf("receiving %s: %w", h.Name, err)
	}
	// Read to the end so the trailer arrives: past the archive there is
	// only its padding.
	if n, err := io.Copy(sum, io.LimitReader(body, maxPadding+1)); err != nil || n > maxPadding {
		return "", workloads.Refuse(errdefs.ErrInvalidArgument, "receiving %s: %d bytes after the end of the archive (%v)", h.Name, n, err)
	}
	if got, want := hex.EncodeToString(sum.Sum(nil)), trailer(); got != want {
		return "", workloads.Refuse(errdefs.ErrInvalidArgument,
			"receiving %s: the stream is corrupt (CRC-32C %s, the source sent %q)", h.Name, got, want)
	}
	return cpDir, nil
}

// fencedPid is the process whose network namespace fences a restored twin:
// its holder's, or its own.
func (m *Migrator) fencedPid(ctx context.Context, twinID, holderID string) int {
	id := twinID
	if holderID != "" {
		id = holderID
	}
	res, err := m.Engine.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil || !res.Container.State.Running {
		return 0
	}
	return res.Container.State.Pid
}

// Decide takes the source's decision on a migration this node restored:
// commit lifts the fence (the twin is the container now), abort removes
// the twin. A migration no longer journaled is not found: it was decided
// already, or never got a copy here.
func (m *Migrator) Decide(ctx context.Context, from, id string, d api.Decision) error {
	if !migrationID.MatchString(id) {
		return workloads.Refuse(errdefs.ErrInvalidArgument, "bad migration id %q", id)
	}
	// Carried out whole even if the source stops waiting.
	ctx = context.WithoutCancel(ctx)
	m.resolveMu.Lock()
	defer m.resolveMu.Unlock()
	e, err := m.Journal.Get(id)
	if errors.Is(err, os.ErrNotExist) {
		return workloads.Refuse(errdefs.ErrNotFound, "node %s has no migration %s to decide", m.Node, id)
	}
	if err != nil {
		return err
	}
	if e.Role != journal.Destination || e.Peer != from {
		return workloads.Refuse(errdefs.ErrPermissionDenied, "node %s may not decide migration %q on %s", from, id, m.Node)
	}
	if m.isActive(id) && !d.Commit {
		// The receive still runs: it fails as the source's stream ends,
		// and removes the twin itself.
		return nil
	}
	if e.State != journal.Restored {
		if d.Commit {
			return workloads.Refuse(errdefs.ErrFailedPrecondition, "migration %s is %s on %s, not restored: it cannot be committed", id, e.State, m.Node)
		}
		return m.settleDest(ctx, e, false)
	}
	return m.settleDest(ctx, e, d.Commit)
}

// settleDest carries out a decision on a twin: commit unlocks its network,
// abort removes it (and whatever else carries the migration's label: a
// twin, holder or volume made before the journal named it). The entry goes
// only once that is done. Callers hold resolveMu.
func (m *Migrator) settleDest(ctx context.Context, e journal.Entry, commit bool) error {
	rec := e.Dest
	if commit {
		if err := m.fault(ctx, "dest:decided"); err != nil {
			return err
		}
		pid := m.fencedPid(ctx, rec.TwinID, rec.HolderID)
		if pid == 0 || m.fencedPid(ctx, rec.TwinID, "") == 0 {
			// Its fence was never lifted: the source may resume its own.
			return workloads.Refuse(errdefs.ErrFailedPrecondition, "%s on %s: the restored copy is not running", e.Container, m.Node)
		}
		if err := unlockNetwork(ctx, pid); err != nil {
			return fmt.Errorf("lifting the fence of %s on %s: %w", e.Container, m.Node, err)
		}
		if err := m.releaseHold(ctx, e.ID, pid); err != nil {
			return fmt.Errorf("lifting the fence of %s on %s: %w", e.Container, m.Node, err)
		}
		m.takeRestart(ctx, rec.TwinID, e.Container, rec.Restart)
		log.Printf("migration %s of %s from %s: committed, fence lifted", e.ID, e.Container, e.Peer)
	} else {
		m.dropHold(e.ID)
		m.Workloads.RemoveTwin(ctx, &workloads.Twin{ID: rec.TwinID, HolderID: rec.HolderID, CreatedVolumes: rec.Volumes, FilesDir: rec.FilesDir})
		if err := m.Workloads.RemoveMigration(ctx, e.ID); err != nil {
			return fmt.Errorf("removing the copy of %s on %s: %w", e.Container, m.Node, err)
		}
		log.Printf("migration %s of %s from %s: aborted, twin removed", e.ID, e.Container, e.Peer)
	}
	m.removeDirs(rec.Dirs...)
	return m.Journal.Remove(e.ID)
}
