package migrate

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
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
// with its state (thawed, or restored from its own checkpoint after an
// engine checkpoint, if it was frozen).
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
	carrier, err := m.Workloads.Carrier(ctx, c)
	if err != nil {
		return nil, err
	}
	// A container in a holder's namespace is checkpointed without it, and
	// so restored into one wherever it goes.
	holder := carrier.ID != c.ID
	hdr, err := m.header(c, carrier, req.ID)
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
	prepReq.InHolder = holder
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
		if err := m.engineCheckpointable(ctx, hdr.Name, req.To, holder || prep.Holder, rerr); err != nil {
			return nil, err
		}
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
	frozenAt := time.Now()
	var f frozen
	if hdr.ImagesDir {
		f, err = m.freeze(ctx, rt, c, hdr.Name, imgDir, prep.Holder && !holder)
	} else {
		f, err = m.checkpointThroughEngine(ctx, c, hdr.Name, imgDir)
	}
	if err != nil {
		return nil, err
	}
	// CRIU leaves its stats in the work directory runc names, or the
	// engine's checkpoint directory.
	dump := dumpStats(m.host(imgDir + "-work"))
	if !hdr.ImagesDir {
		dump = dumpStats(f.imagesDir())
	}
	emit(api.MigrateEvent{Phase: api.PhaseCheckpoint, Message: fmt.Sprintf("checkpointed in %.2fs", time.Since(frozenAt).Seconds())})
	// Free the overlay IP for the twin (the frozen endpoint would hold it).
	_, _ = m.Engine.NetworkDisconnect(ctx, hdr.Network, client.NetworkDisconnectOptions{Container: carrier.ID, Force: true})

	emit(api.MigrateEvent{Phase: api.PhaseTransfer, Message: "streaming to " + req.To})
	sent, got, err := m.send(ctx, peer, hdr, trees, f.imagesDir(), emit)
	if err != nil {
		emit(api.MigrateEvent{Phase: api.PhaseRollback, Message: "resuming " + hdr.Name + " on " + m.Node})
		if rerr := m.undo(ctx, f, carrier.ID, hdr); rerr != nil {
			return nil, fmt.Errorf("migration to %s failed (%v), and resuming it on %s failed too: %v", req.To, err, m.Node, rerr)
		}
		return nil, fmt.Errorf("migration to %s failed, %s runs on %s again with its state: %v", req.To, hdr.Name, m.Node, err)
	}
	restored := time.Now()
	// The twin runs: this copy goes, with its holder and the volumes it
	// took along.
	f.end(ctx)
	for _, id := range []string{c.ID, carrier.ID} {
		if _, err := m.Engine.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true}); err != nil && !errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("%s runs on %s, but removing the stopped copy on %s failed: %w", hdr.Name, req.To, m.Node, err)
		}
	}
	for _, v := range hdr.Volumes {
		// Not forced: a volume another container here still uses stays.
		if _, err := m.Engine.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{}); err != nil {
			emit(api.MigrateEvent{Phase: api.PhaseDone, Message: fmt.Sprintf("volume %s stays on %s: %v", v.Name, m.Node, err)})
		}
	}
	return &api.MigrateResult{
		Container: hdr.Name, From: m.Node, To: req.To, IP: got.IP, Cpuset: got.Cpuset,
		Downtime: restored.Sub(frozenAt).Seconds(), Total: time.Since(start).Seconds(),
		Bytes: sent, Dump: dump, Restore: got.Restore, Time: time.Now().UTC().Format(time.RFC3339),
	}, nil
}

// engineCheckpointable refuses, before the freeze, the engine's checkpoint
// (the fallback without runc access, noRunc saying why) where it could not
// be restored: a network namespace to leave out of it (external), or an
// engine here that restores only into a network holder, which a rollback
// could not have.
func (m *Migrator) engineCheckpointable(ctx context.Context, name, to string, external bool, noRunc error) error {
	why := ""
	if external {
		why = "its network namespace must be left out of the checkpoint (it lives in a network holder, or " + to + " restores into one)"
	} else if needs, err := m.needsHolder(ctx); err != nil {
		return err
	} else if needs {
		why = "this node's engine could restore it, were the migration to fail, only into a network holder"
	}
	if why == "" {
		return nil
	}
	return workloads.Refuse(errdefs.ErrFailedPrecondition,
		"%s cannot migrate to %s, it keeps running on %s untouched: %s, which needs direct runc access, and there is none here (%v)",
		name, to, m.Node, why, noRunc)
}

// header describes the container for its twin; carrier is the container
// whose endpoint carries its network (itself, or its holder).
func (m *Migrator) header(c, carrier container.InspectResponse, id string) (api.ReceiveHeader, error) {
	name := strings.TrimPrefix(c.Name, "/")
	net := c.Config.Labels[labels.NetworkName]
	ep, ok := carrier.NetworkSettings.Networks[net]
	if !ok || ep == nil || !ep.IPAddress.IsValid() {
		return api.ReceiveHeader{}, fmt.Errorf("%s is not on the fleet network %q", name, net)
	}
	h := api.ReceiveHeader{
		ID: id, Name: name, From: m.Node, Checkpoint: checkpointName,
		Config: *c.Config, Network: net, IP: ep.IPAddress.String(), Ports: carrier.HostConfig.PortBindings,
		Memory: c.HostConfig.Memory, MemorySwap: c.HostConfig.MemorySwap,
	}
	// What a holder carries for the container.
	h.Config.Hostname, h.Config.Domainname = carrier.Config.Hostname, carrier.Config.Domainname
	h.Config.ExposedPorts = carrier.Config.ExposedPorts
	short := carrier.ID[:12]
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
