package workloads

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/labels"
)

// The anchor is a small idle container on the fleet network on every node
// that runs fleet containers. It keeps the overlay network set up there: a
// worker otherwise tears the network down when its last container leaves,
// and a container started meanwhile fails ("network … not found"); it also
// spares a migration's destination building the network (≈0.8 s here).
const (
	AnchorName  = "fleet-anchor"
	anchorImage = "docker-fleet/anchor:latest"
	// AnchorArg makes the agent binary idle as the anchor's process.
	AnchorArg = "anchor"
)

// createOnNetwork creates a container on the fleet network net. Right after
// an engine restart a worker may have lost that network ("network … not
// found", the image being there already): the anchor is made again, which
// attaches the network, and the create tried again. Callers hold m.mu.
func (m *Manager) createOnNetwork(ctx context.Context, opts client.ContainerCreateOptions, net string) (client.ContainerCreateResult, error) {
	for attempt := 0; ; attempt++ {
		created, err := m.Engine.ContainerCreate(ctx, opts)
		// A container on its host's network needs no overlay network set up.
		if err == nil || !errdefs.IsNotFound(err) || attempt == 4 || opts.HostConfig.NetworkMode.IsHost() {
			return created, err
		}
		_, _ = m.Engine.ContainerRemove(ctx, AnchorName, client.ContainerRemoveOptions{Force: true})
		if aerr := m.ensureAnchor(ctx, net); aerr != nil {
			return created, err
		}
		select {
		case <-ctx.Done():
			return created, err
		case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
		}
	}
}

// EnsureAnchor is ensureAnchor under the ledger lock: for a restore on a
// node whose engine may have lost the network (restarted).
func (m *Manager) EnsureAnchor(ctx context.Context, net string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ensureAnchor(ctx, net)
}

// ensureAnchor makes the anchor run on the network, building its image from
// the agent's own binary when the engine lacks it. Callers hold m.mu.
func (m *Manager) ensureAnchor(ctx context.Context, net string) error {
	res, err := m.Engine.ContainerInspect(ctx, AnchorName, client.ContainerInspectOptions{})
	if err == nil {
		_, nerr := m.Engine.NetworkInspect(ctx, net, client.NetworkInspectOptions{})
		switch {
		case nerr == nil && res.Container.State.Running:
			return nil
		case nerr == nil:
			_, err = m.Engine.ContainerStart(ctx, AnchorName, client.ContainerStartOptions{})
			if !errdefs.IsNotFound(err) {
				return err
			}
		case !errdefs.IsNotFound(nerr):
			return nerr
		}
		// After an engine restart, the anchor may run, or fail to start,
		// while the node no longer has the network (the swarm attaches it
		// anew only to a container created on it): make the anchor again.
		if _, err := m.Engine.ContainerRemove(ctx, AnchorName, client.ContainerRemoveOptions{Force: true}); err != nil {
			return err
		}
		err = errdefs.ErrNotFound
	}
	if !errdefs.IsNotFound(err) {
		return err
	}
	if _, err := m.Engine.ImageInspect(ctx, anchorImage); err != nil {
		if err := m.importAnchorImage(ctx); err != nil {
			return fmt.Errorf("building the anchor image: %w", err)
		}
	}
	_, err = m.Engine.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: AnchorName,
		Config: &container.Config{
			Image:  anchorImage,
			Labels: map[string]string{labels.Prefix + ".anchor": "true"},
		},
		HostConfig: &container.HostConfig{
			NetworkMode:   container.NetworkMode(net),
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
			Resources:     container.Resources{Memory: 16 << 20},
		},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{net: {}}},
	})
	if err != nil {
		return fmt.Errorf("creating the anchor: %w", err)
	}
	return m.start(ctx, AnchorName)
}

// importAnchorImage imports a one-file image: the agent binary, which idles
// when given AnchorArg.
func (m *Manager) importAnchorImage(ctx context.Context) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	f, err := os.Open(self)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{Name: "anchor", Mode: 0o755, Size: st.Size(), Typeflag: tar.TypeReg})
		if err == nil {
			_, err = io.Copy(tw, f)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	out, err := m.Engine.ImageImport(ctx, client.ImageImportSource{Source: pr, SourceName: "-"}, anchorImage,
		client.ImageImportOptions{Changes: []string{`ENTRYPOINT ["/anchor", "` + AnchorArg + `"]`}})
	if err != nil {
		return err
	}
	defer out.Close()
	_, err = io.Copy(io.Discard, out)
	return err
}
