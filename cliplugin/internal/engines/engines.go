// Package engines opens the Docker engines the CLI works on, named by docker
// context the way `docker --context` does.
package engines

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/cli/cli/context/docker"
	"github.com/docker/cli/cli/context/store"
	"github.com/moby/moby/client"
)

// DefaultSocket is where an engine listens on its own host unless its
// context says otherwise.
const DefaultSocket = "/var/run/docker.sock"

// Engine is one Docker engine and the context that names it.
type Engine struct {
	Context string
	Host    string
	Client  client.APIClient
	// socket is where the engine's socket is on its host, when learned;
	// named: by the operator (SetSocket).
	socket string
	named  bool
}

// FromContext opens the engine the docker context name points at.
func FromContext(s store.Reader, name string) (*Engine, error) {
	md, err := s.GetMetadata(name)
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("docker context %q does not exist (see `docker context ls`)", name)
	}
	if err != nil {
		return nil, fmt.Errorf("docker context %q: %w", name, err)
	}
	meta, err := docker.EndpointFromContext(md)
	if err != nil {
		return nil, fmt.Errorf("docker context %q: %w", name, err)
	}
	ep, err := docker.WithTLSData(s, name, meta)
	if err != nil {
		return nil, fmt.Errorf("docker context %q: %w", name, err)
	}
	opts, err := ep.ClientOpts()
	if err != nil {
		return nil, fmt.Errorf("docker context %q: %w", name, err)
	}
	c, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker context %q: %w", name, err)
	}
	return &Engine{Context: name, Host: ep.Host, Client: c}, nil
}

// Check makes sure the engine answers.
func (e *Engine) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := e.Client.Ping(ctx, client.PingOptions{}); err != nil {
		return fmt.Errorf("docker context %q: engine at %s is not reachable: %w", e.Context, e.Host, err)
	}
	return nil
}

// SocketOnHost is the path of the engine's API socket on the engine's own
// host, which the agent mounts. A unix context names it; for a remote
// context (ssh://, tcp://) the engine is taken to listen where it does by
// default, unless LearnSocket found otherwise.
func (e *Engine) SocketOnHost() string {
	if e.socket != "" {
		return e.socket
	}
	if p, ok := strings.CutPrefix(e.Host, "unix://"); ok {
		return p
	}
	return DefaultSocket
}
