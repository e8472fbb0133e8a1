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
	"time"

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
		return RelayUpgraded, replaceRelay(ctx, c, ctr.ID, spec, gz, build)
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

// retiredRelay prefixes the name of a relay another one replaced, which
// runs on until the connections through it end (RetireRelays).
const retiredRelay = relayName + "-retired-"

// replaceRelay puts a new relay in the old one's place without cutting the
// connections through the old one (a migration's stream, another CLI's
// command): the old one is renamed aside and runs on, the new one takes
// the name, which new connections look up. A new relay that does not
// start gives the name back.
func replaceRelay(ctx context.Context, c client.APIClient, oldID string, spec client.ContainerCreateOptions, gz []byte, build string) error {
	// The new one starts under a name of its own: the name is without a
	// relay only between the two renames.
	next := relayName + "-next"
	_, _ = c.ContainerRemove(ctx, next, client.ContainerRemoveOptions{Force: true}) // a killed init's
	spec.Name = next
	if err := createRelay(ctx, c, spec, gz, build); err != nil {
		return err
	}
	aside := retiredRelay + oldID[:min(12, len(oldID))]
	if _, err := c.ContainerRename(ctx, oldID, client.ContainerRenameOptions{NewName: aside}); err != nil {
		_, _ = c.ContainerRemove(context.WithoutCancel(ctx), next, client.ContainerRemoveOptions{Force: true})
		return fmt.Errorf("renaming the old relay aside: %w", err)
	}
	if _, err := c.ContainerRename(ctx, next, client.ContainerRenameOptions{NewName: relayName}); err != nil {
		restore := context.WithoutCancel(ctx)
		_, _ = c.ContainerRename(restore, oldID, client.ContainerRenameOptions{NewName: relayName})
		_, _ = c.ContainerRemove(restore, next, client.ContainerRemoveOptions{Force: true})
		return fmt.Errorf("naming the new relay: %w", err)
	}
	RetireRelays(ctx, c, 0)
	return nil
}

// RetireRelays removes the relays that others replaced once no connection
// runs through them, waiting up to wait for that; one still busy then is
// left to the next call (the next init). It says how many are left.
func RetireRelays(ctx context.Context, c client.APIClient, wait time.Duration) int {
	deadline := time.Now().Add(wait)
	for {
		res, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("name", retiredRelay)})
		if err != nil {
			return 0
		}
		left := 0
		for _, ctr := range res.Items {
			if relayBusy(ctx, c, ctr.ID) {
				left++
				continue
			}
			_, _ = c.ContainerRemove(ctx, ctr.ID, client.ContainerRemoveOptions{Force: true})
		}
		if left == 0 || !time.Now().Before(deadline) {
			if left == 0 {
				pruneRelayImages(ctx, c, "")
			}
			return left
		}
		select {
		case <-ctx.Done():
			return left
		case <-time.After(time.Second):
		}
	}
}

// relayBusy says whether a connection (an exec) still runs through relay id.
func relayBusy(ctx context.Context, c client.APIClient, id string) bool {
	res, err := c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return false
	}
	for _, x := range res.Container.ExecIDs {
		if e, err := c.ExecInspect(ctx, x, client.ExecInspectOptions{}); err == nil && e.Running {
			return true
		}
	}
	return false
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

// EnsureRelayImage makes sure the engine has the relay image of this
// build (the agent's binary alone), importing it when missing, and returns
// its reference. The socket probe runs in it too (engines.LearnSocket).
func EnsureRelayImage(ctx context.Context, c client.APIClient) (string, error) {
	gz, err := packaging.AgentPluginGz()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(gz)
	build := hex.EncodeToString(sum[:8])
	ref := api.RelayImage + ":" + build
	return ref, ensureImage(ctx, c, ref, gz, build)
}

func ensureImage(ctx context.Context, c client.APIClient, ref string, gz []byte, build string) error {
	if _, err := c.ImageInspect(ctx, ref); errdefs.IsNotFound(err) {
		if err := importRelayImage(ctx, c, ref, gz, build); err != nil {
			return fmt.Errorf("building the relay image: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("inspecting image %s: %w", ref, err)
	}
	return nil
}

func createRelay(ctx context.Context, c client.APIClient, spec client.ContainerCreateOptions, gz []byte, build string) error {
	ref := spec.Config.Image
	if err := ensureImage(ctx, c, ref, gz, build); err != nil {
		return err
	}
	if _, err := c.ContainerCreate(ctx, spec); err != nil {
		return fmt.Errorf("creating the relay container: %w", err)
	}
	if _, err := c.ContainerStart(ctx, spec.Name, client.ContainerStartOptions{}); err != nil {
		_, _ = c.ContainerRemove(context.WithoutCancel(ctx), spec.Name, client.ContainerRemoveOptions{Force: true})
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
