package migrate

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/agentclient"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/labels"
)

// stallTimeout is how long a transfer may make no progress before it is
// given up (a cut link stalls rather than fails).
var stallTimeout = 15 * time.Second

// Migrate moves one of this node's containers to req.To. It ends with the
// container running on the destination and removed here, or running here
// with its state (restored from its own checkpoint if it was frozen).
func (m *Migrator) Migrate(ctx context.Context, req api.MigrateRequest, emit func(api.MigrateEvent)) (*api.MigrateResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Once frozen, the container's fate must not depend on the caller
	// staying connected.
	ctx = context.WithoutCancel(ctx)
	start := time.Now()
	if req.ID == "" {
		return nil, workloads.Refuse(errdefs.ErrInvalidArgument, "migration of %s: no migration id (a CLI older than this agent): update docker-fleet", req.Container)
	}

	res, err := m.Engine.ContainerInspect(ctx, req.Container, client.ContainerInspectOptions{})
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", req.Container, m.Node, err)
	}
	c := res.Container
	if err := checkable(c, req.Container, m.Node); err != nil {
		return nil, err
	}
	// What CRIU cannot checkpoint is refused before anything is frozen,
	// announced or sent.
	if problems := m.precheck(ctx, c); len(problems) > 0 {
		return nil, refusePrecheck(strings.TrimPrefix(c.Name, "/"), m.Node, problems)
	}
	hdr, err := m.header(c, req.ID)
	if err != nil {
		return nil, err
	}
	peer, err := m.peer(req.To, req.ToAddr)
	if err != nil {
		return nil, err
	}

	emit(api.MigrateEvent{Phase: api.PhasePrepare, Message: "asking " + req.To})
	trees, err := m.trees(c)
	if err != nil {
		return nil, err
	}
	prepReq, err := m.prepareRequest(ctx, c, hdr, trees)
	if err != nil {
		return nil, err
	}
	prep, err := peer.Prepare(ctx, req.ID, prepReq)
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", req.To, err)
	}
	if !prep.HaveImage {
		emit(api.MigrateEvent{Phase: api.PhaseImage, Message: "streaming image " + c.Config.Image + " to " + req.To})
		if err := m.sendImage(ctx, peer, req.ID, c.Config.Image); err != nil {
			return nil, fmt.Errorf("streaming image %s to %s: %w", c.Config.Image, req.To, err)
		}
	}

	// The fast path needs the container's runc state; without it, the
	// engine checkpoints.
	rt, rerr := m.findRunc(c)
	if rerr != nil {
		emit(api.MigrateEvent{Phase: api.PhaseCheckpoint, Message: "no direct runc access (" + rerr.Error() + "): checkpointing through the engine"})
	}
	hdr.ImagesDir = rerr == nil
	imgDir := filepath.Join(shmDir, "fleet-migration-"+hdr.ID)
	defer os.RemoveAll(m.host(imgDir))
	// The dump's work directory holds CRIU's log and stats: the log of a
	// failed dump is kept elsewhere (keepLog), the stats read on success.
	defer os.RemoveAll(m.host(imgDir + "-work"))

	// Freeze: from here on, the container runs again here or there.
	emit(api.MigrateEvent{Phase: api.PhaseCheckpoint, Message: "checkpointing " + hdr.Name})
	frozen := time.Now()
	err = withCRIULock(m.HostRoot, nil, func() error {
		if hdr.ImagesDir {
			return m.runcCheckpoint(ctx, rt, c.ID, imgDir)
		}
		_, err := m.Engine.CheckpointCreate(ctx, c.ID, client.CheckpointCreateOptions{CheckpointID: checkpointName, Exit: true})
		return err
	})
	if err != nil {
		reason := m.failure(err, "dump", hdr.Name)
		if now, ierr := m.Engine.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{}); ierr == nil && !now.Container.State.Running {
			// CRIU resumes what it failed to dump; should it not have, the
			// container is brought back from what it was.
			_, _ = m.Engine.ContainerStart(ctx, c.ID, client.ContainerStartOptions{})
		} else if ierr == nil {
			unlockNetwork(ctx, now.Container.State.Pid)
		}
		return nil, fmt.Errorf("checkpoint of %s failed, it keeps running on %s: %s", hdr.Name, m.Node, reason)
	}
	dump := dumpStats(m.host(imgDir + "-work"))
	_ = os.RemoveAll(m.host(imgDir + "-work"))
	cpDir := m.host(imgDir)
	if !hdr.ImagesDir {
		if cpDir, err = m.checkpointDir(ctx, c.ID); err != nil {
			return nil, err
		}
		dump = dumpStats(cpDir)
	} else if err := m.waitStopped(ctx, c.ID); err != nil {
		return nil, err
	}
	emit(api.MigrateEvent{Phase: api.PhaseCheckpoint, Message: fmt.Sprintf("checkpointed in %.2fs", time.Since(frozen).Seconds())})
	// Free the overlay IP for the twin (the frozen endpoint would hold it).
	_, _ = m.Engine.NetworkDisconnect(ctx, hdr.Network, client.NetworkDisconnectOptions{Container: c.ID, Force: true})

	emit(api.MigrateEvent{Phase: api.PhaseTransfer, Message: "streaming to " + req.To})
	sent, got, err := m.send(ctx, peer, hdr, trees, cpDir, emit)
	if err != nil {
		emit(api.MigrateEvent{Phase: api.PhaseRollback, Message: "restoring " + hdr.Name + " on " + m.Node})
		if rerr := m.rollback(ctx, c, hdr, imgDir); rerr != nil {
			return nil, fmt.Errorf("migration to %s failed (%v), and restoring it on %s failed too: %v", req.To, err, m.Node, rerr)
		}
		return nil, fmt.Errorf("migration to %s failed, %s runs on %s again with its state: %v", req.To, hdr.Name, m.Node, err)
	}
	restored := time.Now()
	// The twin runs: this copy goes, and the volumes it took along.
	if _, err := m.Engine.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
		return nil, fmt.Errorf("%s runs on %s, but removing the stopped copy on %s failed: %w", hdr.Name, req.To, m.Node, err)
	}
	for _, v := range hdr.Volumes {
		// Not forced: a volume another container here still uses stays.
		if _, err := m.Engine.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{}); err != nil {
			emit(api.MigrateEvent{Phase: api.PhaseDone, Message: fmt.Sprintf("volume %s stays on %s: %v", v.Name, m.Node, err)})
		}
	}
	return &api.MigrateResult{
		Container: hdr.Name, From: m.Node, To: req.To, IP: got.IP, Cpuset: got.Cpuset,
		Downtime: restored.Sub(frozen).Seconds(), Total: time.Since(start).Seconds(),
		Bytes: sent, Dump: dump, Restore: got.Restore, Time: time.Now().UTC().Format(time.RFC3339),
	}, nil
}

// header describes the container for its twin.
func (m *Migrator) header(c container.InspectResponse, id string) (api.ReceiveHeader, error) {
	name := strings.TrimPrefix(c.Name, "/")
	net := c.Config.Labels[labels.NetworkName]
	ep, ok := c.NetworkSettings.Networks[net]
	if !ok || ep == nil || !ep.IPAddress.IsValid() {
		return api.ReceiveHeader{}, fmt.Errorf("%s is not on the fleet network %q", name, net)
	}
	h := api.ReceiveHeader{
		ID: id, Name: name, From: m.Node, Checkpoint: checkpointName,
		Config: *c.Config, Network: net, IP: ep.IPAddress.String(), Ports: c.HostConfig.PortBindings,
		Memory: c.HostConfig.Memory, MemorySwap: c.HostConfig.MemorySwap,
	}
	short := c.ID[:12]
	for _, a := range ep.Aliases {
		if a != short {
			h.Aliases = append(h.Aliases, a)
		}
	}
	if c.Config.Labels[labels.Exclusive] == "true" {
		set, _ := cpuset.Parse(c.HostConfig.CpusetCpus)
		h.Cores = len(set)
	}
	for _, mp := range c.Mounts {
		switch mp.Type {
		case mount.TypeVolume:
			h.Volumes = append(h.Volumes, api.VolumeMount{Name: mp.Name, Target: mp.Destination, ReadOnly: !mp.RW})
		case mount.TypeBind:
			return h, fmt.Errorf("%s bind-mounts %s from its host, which cannot move with it: use a named volume", name, mp.Source)
		}
	}
	return h, nil
}

// checkpointDir is where, through the host root, the engine keeps the
// migration's checkpoint of a container.
func (m *Migrator) checkpointDir(ctx context.Context, id string) (string, error) {
	info, err := m.Engine.Info(ctx, client.InfoOptions{})
	if err != nil {
		return "", fmt.Errorf("engine: %w", err)
	}
	return m.host(filepath.Join(info.Info.DockerRootDir, "containers", id, "checkpoints", checkpointName)), nil
}

func (m *Migrator) sendImage(ctx context.Context, peer *agentclient.Client, migration, image string) error {
	rc, err := m.Engine.ImageSave(ctx, []string{image})
	if err != nil {
		return err
	}
	defer rc.Close()
	return peer.LoadImage(ctx, migration, rc)
}

// prepareRequest is what the destination must make room for, measured
// before the freeze: the writable layer and volumes by a scan (which also
// refuses what a stream cannot carry), the CRIU images from the memory in
// use. The margins cover what the container writes until it is frozen.
func (m *Migrator) prepareRequest(ctx context.Context, c container.InspectResponse, h api.ReceiveHeader, trees []tree) (api.PrepareRequest, error) {
	req := api.PrepareRequest{Name: h.Name, Image: c.Config.Image, ImageID: c.Image, Cores: h.Cores, Memory: h.Memory}
	for _, t := range trees {
		st, err := scanTree(t.prefix, t.dir)
		if err != nil {
			return req, fmt.Errorf("%s cannot migrate: %w", h.Name, err)
		}
		req.Files += st.Bytes
	}
	req.Files += req.Files/10 + 16<<20
	used, err := m.Workloads.MemoryUsage(ctx, c.ID)
	if err != nil {
		return req, err
	}
	req.Checkpoint = used + used/4 + 64<<20
	return req, nil
}

// send streams the container to the destination, watching that the stream
// keeps moving, and returns the bytes sent and the destination's answer.
func (m *Migrator) send(ctx context.Context, peer *agentclient.Client, h api.ReceiveHeader, trees []tree, cpDir string, emit func(api.MigrateEvent)) (int64, api.ReceiveResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	pr, pw := io.Pipe()
	sum := sha256.New()
	var sent atomic.Int64
	go func() {
		w := io.MultiWriter(pw, sum, counter{&sent})
		tw := tar.NewWriter(w)
		err := m.writeContainer(ctx, tw, trees, cpDir)
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()

	done := make(chan struct{})
	defer close(done)
	go func() {
		last, lastAt, t0 := int64(0), time.Now(), time.Now()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			n := sent.Load()
			if n != last {
				last, lastAt = n, time.Now()
				rate := float64(n) / time.Since(t0).Seconds()
				emit(api.MigrateEvent{Phase: api.PhaseTransfer, Bytes: n,
					Message: fmt.Sprintf("%s sent (%s/s)", units.HumanSize(float64(n)), units.HumanSize(rate))})
			} else if time.Since(lastAt) > stallTimeout {
				cancel(fmt.Errorf("the transfer stalled for %s (is the link to the destination cut?)", stallTimeout))
				return
			}
		}
	}()
	got, err := peer.Receive(ctx, h, pr, func() string { return hex.EncodeToString(sum.Sum(nil)) })
	if cause := context.Cause(ctx); err != nil && cause != nil && cause != context.Canceled {
		err = cause
	}
	return sent.Load(), got, err
}

type counter struct{ n *atomic.Int64 }

func (c counter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

// tree is one directory the stream carries, under its section's prefix.
type tree struct{ prefix, dir string }

// trees are the container's writable layer and its named volumes (each
// once, however often it is mounted), as host paths.
func (m *Migrator) trees(c container.InspectResponse) ([]tree, error) {
	if c.GraphDriver == nil || c.GraphDriver.Data["UpperDir"] == "" {
		return nil, fmt.Errorf("the engine's storage driver has no writable layer directory (overlay2 is needed)")
	}
	out := []tree{{api.SectionRootfs, m.host(c.GraphDriver.Data["UpperDir"])}}
	seen := map[string]bool{}
	for _, mp := range c.Mounts {
		if mp.Type == mount.TypeVolume && !seen[mp.Name] {
			seen[mp.Name] = true
			out = append(out, tree{api.SectionVolumes + mp.Name + "/", m.host(mp.Source)})
		}
	}
	return out, nil
}

// writeContainer writes the writable layer, the named volumes and the CRIU
// images, each in its section.
func (m *Migrator) writeContainer(ctx context.Context, tw *tar.Writer, trees []tree, cpDir string) error {
	for _, t := range append(trees, tree{api.SectionCheckpoint, cpDir}) {
		if err := writeTree(tw, t.prefix, t.dir); err != nil {
			return fmt.Errorf("%s: %w", strings.TrimSuffix(t.prefix, "/"), err)
		}
	}
	return ctx.Err()
}

// rollback brings the frozen container back on this node from its own
// checkpoint, with its IP and aliases.
func (m *Migrator) rollback(ctx context.Context, c container.InspectResponse, h api.ReceiveHeader, imgDir string) error {
	ip, _ := netip.ParseAddr(h.IP)
	var lastErr error
	// The destination may still hold the IP for a moment while it cleans up.
	for attempt := 0; attempt < 20; attempt++ {
		_, lastErr = m.Engine.NetworkConnect(ctx, h.Network, client.NetworkConnectOptions{Container: c.ID,
			EndpointConfig: &network.EndpointSettings{IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: ip}, Aliases: h.Aliases}})
		if lastErr == nil || strings.Contains(lastErr.Error(), "already exists") {
			lastErr = nil
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if lastErr != nil {
		return fmt.Errorf("reconnecting to %s with %s: %w", h.Network, h.IP, lastErr)
	}
	if err := m.restore(ctx, c.ID, h.Name, h.ImagesDir, imgDir); err != nil {
		return err
	}
	_, _ = m.Engine.CheckpointRemove(ctx, c.ID, client.CheckpointRemoveOptions{CheckpointID: checkpointName})
	return nil
}

// restore starts a container from its checkpoint: from the engine's
// checkpoint directory, or (fast path) from images in imgDir, of which the
// engine gets only descriptors.json.
func (m *Migrator) restore(ctx context.Context, id, name string, fast bool, imgDir string) error {
	var extra []string
	if fast {
		cpDir, err := m.checkpointDir(ctx, id)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(cpDir, 0o700); err != nil {
			return err
		}
		desc, err := os.ReadFile(m.host(filepath.Join(imgDir, "descriptors.json")))
		if err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		if err := os.WriteFile(filepath.Join(cpDir, "descriptors.json"), desc, 0o600); err != nil {
			return err
		}
		extra = []string{"images-dir " + imgDir}
	}
	return withCRIULock(m.HostRoot, extra, func() error {
		_, err := m.Engine.ContainerStart(ctx, id, client.ContainerStartOptions{CheckpointID: checkpointName})
		if err != nil {
			return fmt.Errorf("restore: %s", m.failure(err, "restore", name))
		}
		return nil
	})
}

// waitStopped waits until the engine has seen the checkpointed process go.
func (m *Migrator) waitStopped(ctx context.Context, id string) error {
	for i := 0; i < 100; i++ {
		res, err := m.Engine.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			return err
		}
		if !res.Container.State.Running {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the engine still reports %s running after its checkpoint", id)
}

func splitAddr(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("destination address %q: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("destination address %q: bad port", addr)
	}
	return host, p, nil
}
