package engines

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/cliplugin/internal/dial"
	"github.com/docker-fleet/fleet/shared/api"
)

// probeTimeout bounds the socket probe, which tries each listening socket
// of the host for a second at most.
const probeTimeout = time.Minute

// probeSocket asks the engine itself where its API socket is on its host:
// it runs the agent's binary in a short-lived container (the relay's
// image) in the host's network namespace, with the host's root filesystem
// read-only, which finds the socket whose engine has this engine's ID
// (daemonplugin/sockprobe). The container is removed either way.
func (e *Engine) probeSocket(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	info, err := e.Client.Info(ctx, client.InfoOptions{})
	if err != nil {
		return "", err
	}
	ref, err := dial.EnsureRelayImage(ctx, e.Client)
	if err != nil {
		return "", err
	}
	created, err := e.Client.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image:      ref,
			User:       "0:0", // the engine's socket is root's
			Entrypoint: []string{api.RelayBinary, api.ProbeArg},
			Cmd:        []string{info.Info.ID},
			Tty:        true, // plain logs, no stream headers
		},
		HostConfig: &container.HostConfig{
			NetworkMode:    "host",
			ReadonlyRootfs: true,
			CapDrop:        []string{"ALL"},
			SecurityOpt:    []string{"no-new-privileges"},
			// Recursive (the sockets are on submounts such as /run);
			// private: the probe lives a second.
			Mounts: []mount.Mount{{Type: mount.TypeBind, Source: "/", Target: api.ProbeHostRoot, ReadOnly: true}},
		},
	})
	if err != nil {
		return "", fmt.Errorf("creating the socket probe: %w", err)
	}
	defer func() {
		_, _ = e.Client.ContainerRemove(context.WithoutCancel(ctx), created.ID, client.ContainerRemoveOptions{Force: true})
	}()
	if _, err := e.Client.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return "", fmt.Errorf("starting the socket probe: %w", err)
	}
	wait := e.Client.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	var code int64
	select {
	case res := <-wait.Result:
		code = res.StatusCode
	case err := <-wait.Error:
		return "", fmt.Errorf("waiting for the socket probe: %w", err)
	}
	logs, err := e.Client.ContainerLogs(ctx, created.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "", fmt.Errorf("reading the socket probe: %w", err)
	}
	defer logs.Close()
	var out bytes.Buffer
	_, _ = io.Copy(&out, io.LimitReader(logs, 64<<10))
	said := strings.TrimSpace(strings.ReplaceAll(out.String(), "\r", ""))
	if code != 0 || !strings.HasPrefix(said, "/") || strings.ContainsAny(said, "\n") {
		return "", fmt.Errorf("the socket probe found none (exit %d): %s", code, said)
	}
	return said, nil
}
