// Package dial reaches the fleet's agents from the CLI: through the relay
// container on the manager's engine, over nothing but the docker context's
// own connection (unix socket, TCP+TLS or ssh alike), the way buildx reaches
// buildkitd in a container (one exec per command, a stream per
// connection); or directly over TCP to each agent's port. It also builds
// and keeps the relay (EnsureRelay) and remembers, per docker context,
// which of the two the user chose.
package dial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/hashicorp/yamux"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
)

const relayName = api.RelayContainer

// ConnsPerAgent is how many connections to one agent are worth opening
// through the relay: each is a stream of the command's one exec and a TLS
// handshake, so a node's calls need not wait for each other; more would
// only queue at the agent, which serializes its container work anyway.
const ConnsPerAgent = 4

// Relay reaches agents through the relay container on the manager's engine.
// One exec of `fleet-agent relay mux` carries every connection of the
// command, each a yamux stream; a relay of an older build, which has no
// mux, gets one exec of `fleet-agent relay dial HOST:PORT` per connection,
// whose stdin and stdout carry the bytes. TLS runs on top, end to end.
type Relay struct {
	Engine client.APIClient
	// Context is the manager's docker context, named in errors.
	Context string

	mu    sync.Mutex
	sess  *yamux.Session
	mux   *execConn // the exec the session runs over (its stderr)
	noMux bool      // the relay has no mux: one exec per connection
}

// errNoMux is a relay of a build without `relay mux`.
var errNoMux = errors.New("the relay has no mux")

// Dial opens a connection to addr (an agent's host:port) through the relay.
// It returns once the relay has connected to the agent, so that a dead agent
// fails here with the reason rather than later as a broken TLS handshake.
// It has the signature of agentclient.DialFunc.
func (r *Relay) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if network != "tcp" {
		return nil, fmt.Errorf("the fleet's relay carries TCP only, not %s", network)
	}
	sess, ex, err := r.session(ctx)
	if err != nil {
		return nil, err
	}
	if sess != nil {
		c, err := r.dialStream(ctx, sess, ex, addr)
		if !errors.Is(err, errNoMux) {
			return c, err
		}
		r.mu.Lock()
		r.noMux, r.sess = true, nil
		r.mu.Unlock()
	}
	return r.dialExec(ctx, addr)
}

// session is the command's mux session through the relay, started on first
// use (nil when the relay has none).
func (r *Relay) session(ctx context.Context) (*yamux.Session, *execConn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.noMux {
		return nil, nil, nil
	}
	if r.sess != nil && !r.sess.IsClosed() {
		return r.sess, r.mux, nil
	}
	// The session outlives the call that starts it.
	ex, err := r.exec(context.WithoutCancel(ctx), []string{api.RelayBinary, api.RelayArg, api.RelayMux}, "relay mux")
	if err != nil {
		return nil, nil, err
	}
	cfg := yamux.DefaultConfig()
	cfg.MaxStreamWindowSize = api.RelayMuxWindow
	cfg.LogOutput = io.Discard
	sess, err := yamux.Client(ex, cfg)
	if err != nil {
		ex.Close()
		return nil, nil, err
	}
	r.sess, r.mux = sess, ex
	return sess, ex, nil
}

// dialStream opens a stream of the session to addr and waits for the
// relay's answer.
func (r *Relay) dialStream(ctx context.Context, sess *yamux.Session, ex *execConn, addr string) (net.Conn, error) {
	st, err := sess.OpenStream()
	if err != nil {
		return nil, r.muxError(ex, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = st.SetReadDeadline(time.Unix(1, 0)) })
	b, err := func() (byte, error) {
		if _, err := st.Write([]byte(addr + "\n")); err != nil {
			return 0, err
		}
		var b [1]byte
		_, err := io.ReadFull(st, b[:])
		return b[0], err
	}()
	switch {
	case !stop(): // ended meanwhile: the stream's deadline is past
		st.Close()
		return nil, ctx.Err()
	case err != nil:
		st.Close()
		return nil, r.muxError(ex, err)
	case b == api.RelayReady:
		return relayStream{st}, nil
	case b == api.RelayRefused:
		msg, _ := io.ReadAll(io.LimitReader(st, 4096))
		st.Close()
		return nil, &Error{Hop: HopAgent, Context: r.Context, Addr: addr, Err: errors.New(strings.TrimSpace(string(msg)))}
	default:
		st.Close()
		return nil, &Error{Hop: HopRelay, Context: r.Context,
			Err: errors.New("answered with something other than the relay protocol (is it from another build?)")}
	}
}

// relayStream is a mux stream as a connection: closed, it is closed both
// ways. A yamux stream's Close only ends its writing, so a read waiting on
// it (a migration's progress when Ctrl-C cancels its request) would wait
// on until the agent ends the stream.
type relayStream struct{ *yamux.Stream }

func (s relayStream) Close() error {
	_ = s.SetReadDeadline(time.Unix(1, 0))
	return s.Stream.Close()
}

// muxError says why the mux session broke: a relay without mux (its usage
// on stderr), the engine's stream, or the relay process ending.
func (r *Relay) muxError(ex *execConn, err error) error {
	select {
	case <-ex.done:
	case <-time.After(2 * time.Second):
	}
	msg := ex.stderr.String()
	switch {
	case strings.Contains(msg, "usage:"):
		return errNoMux
	case ex.copyErr != nil:
		return &Error{Hop: HopEngine, Context: r.Context, Err: ex.copyErr}
	case msg != "":
		return &Error{Hop: HopRelay, Context: r.Context, Err: fmt.Errorf("ended: %s", msg)}
	}
	return &Error{Hop: HopRelay, Context: r.Context, Err: fmt.Errorf("stopped answering: %w", err)}
}

// dialExec opens a connection to addr through an exec of its own.
func (r *Relay) dialExec(ctx context.Context, addr string) (net.Conn, error) {
	c, err := r.exec(ctx, []string{api.RelayBinary, api.RelayArg, api.RelayDial, addr}, addr)
	if err != nil {
		return nil, err
	}
	if err := r.awaitReady(ctx, c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// exec runs cmd in the relay, its stdio a connection.
func (r *Relay) exec(ctx context.Context, cmd []string, addr string) (*execConn, error) {
	ex, err := r.Engine.ExecCreate(ctx, relayName, client.ExecCreateOptions{
		AttachStdin:  true,
		AttachStdout: true,
		AttachStderr: true,
		Cmd:          cmd,
	})
	if err != nil {
		return nil, r.execError(err)
	}
	att, err := r.Engine.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return nil, r.execError(err)
	}
	return newExecConn(att.Conn, att.Reader, att.CloseWrite, addr), nil
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
