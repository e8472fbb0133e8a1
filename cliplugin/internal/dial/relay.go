// Package dial reaches the fleet's agents from the CLI: through the relay
// container on the manager's engine, over nothing but the docker context's
// own connection (unix socket, TCP+TLS or ssh alike), the way buildx reaches
// buildkitd in a container; or directly over TCP to each agent's port. It
// also builds and keeps the relay (EnsureRelay) and remembers, per docker
// context, which of the two the user chose.
package dial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
)

const relayName = api.RelayContainer

// ConnsPerAgent is how many connections to one agent are worth opening
// through the relay: each costs an exec (≈50 ms here, more under load),
// more than waiting for the one open, as an agent serializes its container
// work anyway.
const ConnsPerAgent = 1

// Relay reaches agents through the relay container on the manager's engine.
// Each connection is one exec of `fleet-agent relay dial HOST:PORT` whose
// stdin and stdout carry the bytes; TLS runs on top, end to end.
type Relay struct {
	Engine client.APIClient
	// Context is the manager's docker context, named in errors.
	Context string
}

// Dial opens a connection to addr (an agent's host:port) through the relay.
// It returns once the relay has connected to the agent, so that a dead agent
// fails here with the reason rather than later as a broken TLS handshake.
// It has the signature of agentclient.DialFunc.
func (r *Relay) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if network != "tcp" {
		return nil, fmt.Errorf("the fleet's relay carries TCP only, not %s", network)
	}
	ex, err := r.Engine.ExecCreate(ctx, relayName, client.ExecCreateOptions{
		AttachStdin:  true,
		AttachStdout: true,
		AttachStderr: true,
		Cmd:          []string{api.RelayBinary, api.RelayArg, api.RelayDial, addr},
	})
	if err != nil {
		return nil, r.execError(err)
	}
	att, err := r.Engine.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return nil, r.execError(err)
	}
	c := newExecConn(att.Conn, att.Reader, att.CloseWrite, addr)
	if err := r.awaitReady(ctx, c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// awaitReady reads the relay's api.RelayReady byte, or its reason for failing.
func (r *Relay) awaitReady(ctx context.Context, c *execConn) error {
	stop := context.AfterFunc(ctx, func() { _ = c.out.SetReadDeadline(time.Unix(1, 0)) })
	var b [1]byte
	_, err := io.ReadFull(c.out, b[:])
	if !stop() {
		return ctx.Err()
	}
	switch {
	case err == nil && b[0] == api.RelayReady:
		return nil
	case err == nil:
		return &Error{Hop: HopRelay, Context: r.Context,
			Err: errors.New("answered with something other than the relay protocol (is it from another build?)")}
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		<-c.done
		if c.copyErr != nil {
			return &Error{Hop: HopEngine, Context: r.Context, Err: c.copyErr}
		}
		msg := c.stderr.String()
		if msg == "" {
			msg = "the relay process ended without a word"
		}
		return &Error{Hop: HopAgent, Context: r.Context, Addr: c.addr.String(), Err: errors.New(msg)}
	default:
		return &Error{Hop: HopEngine, Context: r.Context, Err: err}
	}
}

// execError says which hop refused an exec on the relay.
func (r *Relay) execError(err error) error {
	switch {
	case errdefs.IsNotFound(err):
		return &Error{Hop: HopRelay, Context: r.Context, Err: fmt.Errorf("is missing (%w)", err)}
	case errdefs.IsConflict(err):
		// The engine's refusal to exec in a stopped, paused or restarting container.
		return &Error{Hop: HopRelay, Context: r.Context, Err: fmt.Errorf("is not running (%w)", err)}
	case client.IsErrConnectionFailed(err):
		return &Error{Hop: HopEngine, Context: r.Context, Err: err}
	}
	return fmt.Errorf("the fleet's relay on the manager (docker context %q): %w", r.Context, err)
}

// Check makes sure the relay runs, so that a command fails once with what
// to do instead of once per node.
func (r *Relay) Check(ctx context.Context) error {
	res, err := r.Engine.ContainerInspect(ctx, relayName, client.ContainerInspectOptions{})
	if err != nil {
		return r.execError(err)
	}
	if st := res.Container.State; st == nil || !st.Running || st.Paused || st.Restarting {
		state := "unknown"
		if st != nil {
			state = string(st.Status)
		}
		return &Error{Hop: HopRelay, Context: r.Context, Err: fmt.Errorf("is not running (%s)", state)}
	}
	return nil
}
