package dial

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/packaging"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
)

// The relay's limits: it moves bytes for every open connection of every
// CLI at once, each a process of its own (≈2 MiB of memory and a few
// threads): ten commands at once on three nodes run thirty, which a 64 MiB
// limit had the kernel kill mid-request. These bound a runaway, not use.
const (
	relayMemory = 512 << 20
	relayPids   = 2048
	relayUser   = "65534:65534" // nobody
)

// RelayResult says what EnsureRelay did.
type RelayResult int

const (
	RelayUnchanged RelayResult = iota
	RelayCreated
	RelayUpgraded
	RelayStarted
)

func (r RelayResult) String() string {
	return [...]string{"unchanged", "created", "upgraded", "started"}[r]
}

// EnsureRelay makes the manager's engine run the fleet's relay, allowed to
// dial the given agent ports and nothing else. A relay made by another build
// of the CLI, or for other ports, is replaced; a stopped one is started.
func EnsureRelay(ctx context.Context, c client.APIClient, ports []int) (RelayResult, error) {
	gz, err := packaging.AgentPluginGz()
	if err != nil {
		return RelayUnchanged, err
	}
	sum := sha256.Sum256(gz)
	build := hex.EncodeToString(sum[:8])
	spec, err := relaySpec(build, ports)
	if err != nil {
		return RelayUnchanged, err
	}
	res, err := c.ContainerInspect(ctx, relayName, client.ContainerInspectOptions{})
	switch {
	case errdefs.IsNotFound(err):
		return RelayCreated, createRelay(ctx, c, spec, gz, build)
	case err != nil:
		return RelayUnchanged, fmt.Errorf("inspecting the relay container: %w", err)
	}
	ctr := res.Container
	if ctr.Config == nil || ctr.Config.Labels[labels.Relay] != spec.Config.Labels[labels.Relay] {
		if _, err := c.ContainerRemove(ctx, relayName, client.ContainerRemoveOptions{Force: true}); err != nil && !errdefs.IsNotFound(err) {
			return RelayUnchanged, fmt.Errorf("removing the old relay: %w", err)
		}
		return RelayUpgraded, createRelay(ctx, c, spec, gz, build)
	}
	switch st := ctr.State; {
	case st != nil && st.Paused:
		if _, err := c.ContainerUnpause(ctx, relayName, client.ContainerUnpauseOptions{}); err != nil {
			return RelayUnchanged, fmt.Errorf("unpausing the relay: %w", err)
		}
		return RelayStarted, nil
	case st == nil || !st.Running:
		if _, err := c.ContainerStart(ctx, relayName, client.ContainerStartOptions{}); err != nil {
			return RelayUnchanged, fmt.Errorf("starting the relay: %w", err)
		}
		return RelayStarted, nil
	}
	return RelayUnchanged, nil
}

// relaySpec is the relay container: host network (the agents listen on the
// nodes' addresses, which the manager reaches), and nothing else it does not
// need: no capabilities, no privilege gain, read-only root, no mounts, an
// unprivileged user and small limits.
func relaySpec(build string, ports []int) (client.ContainerCreateOptions, error) {
	ps := slices.Clone(ports)
	slices.Sort(ps)
	ps = slices.Compact(ps)
	allowed := make([]string, len(ps))
	for i, p := range ps {
		allowed[i] = strconv.Itoa(p)
	}
	pids := int64(relayPids)
	spec := client.ContainerCreateOptions{
		Name: relayName,
		Config: &container.Config{
			Image:      api.RelayImage + ":" + build,
			User:       relayUser,
			Entrypoint: []string{api.RelayBinary, api.RelayArg},
			Cmd:        []string{api.RelayIdle},
			Env:        []string{api.EnvRelayPorts + "=" + strings.Join(allowed, ",")},
			Labels:     map[string]string{},
		},
		HostConfig: &container.HostConfig{
			NetworkMode:    "host",
			RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
			ReadonlyRootfs: true,
			CapDrop:        []string{"ALL"},
			SecurityOpt:    []string{"no-new-privileges"},
			Resources:      container.Resources{Memory: relayMemory, MemorySwap: relayMemory, PidsLimit: &pids},
		},
	}
	b, err := json.Marshal(struct {
		C *container.Config
		H *container.HostConfig
	}{spec.Config, spec.HostConfig})
	if err != nil {
		return spec, err
	}
	sum := sha256.Sum256(b)
	spec.Config.Labels[labels.Relay] = hex.EncodeToString(sum[:8])
	return spec, nil
}

func createRelay(ctx context.Context, c client.APIClient, spec client.ContainerCreateOptions, gz []byte, build string) error {
	ref := spec.Config.Image
	if _, err := c.ImageInspect(ctx, ref); errdefs.IsNotFound(err) {
		if err := importRelayImage(ctx, c, ref, gz, build); err != nil {
			return fmt.Errorf("building the relay image: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("inspecting image %s: %w", ref, err)
	}
	if _, err := c.ContainerCreate(ctx, spec); err != nil {
		return fmt.Errorf("creating the relay container: %w", err)
	}
	if _, err := c.ContainerStart(ctx, relayName, client.ContainerStartOptions{}); err != nil {
		_, _ = c.ContainerRemove(context.WithoutCancel(ctx), relayName, client.ContainerRemoveOptions{Force: true})
		return fmt.Errorf("starting the relay container: %w", err)
	}
	pruneRelayImages(ctx, c, ref)
	return nil
}

// importRelayImage makes a one-file image, the agent's static binary taken
// from the plugin package the CLI carries: no registry is needed.
func importRelayImage(ctx context.Context, c client.APIClient, ref string, gz []byte, build string) error {
	bin, err := agentBinary(gz)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(api.RelayBinary, "/"), Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg})
		if err == nil {
			_, err = tw.Write(bin)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	out, err := c.ImageImport(ctx, client.ImageImportSource{Source: pr, SourceName: "-"}, ref, client.ImageImportOptions{
		Changes: []string{
			fmt.Sprintf(`ENTRYPOINT [%q, %q]`, api.RelayBinary, api.RelayArg),
			fmt.Sprintf(`CMD [%q]`, api.RelayIdle),
			"USER " + relayUser,
			"LABEL " + labels.RelayBuild + "=" + build,
		},
	})
	if err != nil {
		pr.CloseWithError(err)
		return err
	}
	defer out.Close()
	// The engine reports a failed import inside the stream.
	dec := json.NewDecoder(out)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
	}
}

// agentBinary is the agent's binary inside the plugin package.
func agentBinary(gz []byte) ([]byte, error) {
	r, err := packaging.Uncompress(gz)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(r)
	want := "rootfs" + api.RelayBinary
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("the agent plugin package has no %s", want)
		}
		if err != nil {
			return nil, err
		}
		if strings.TrimPrefix(h.Name, "./") == want && h.Typeflag == tar.TypeReg {
			return io.ReadAll(tr)
		}
	}
}

// pruneRelayImages removes the relay images of other builds, now unused.
func pruneRelayImages(ctx context.Context, c client.APIClient, keep string) {
	res, err := c.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("label", labels.RelayBuild)})
	if err != nil {
		return
	}
	for _, img := range res.Items {
		if slices.Contains(img.RepoTags, keep) {
			continue
		}
		_, _ = c.ImageRemove(ctx, img.ID, client.ImageRemoveOptions{})
	}
}
