// Package relay is the agent binary's relay mode, the process of the fleet's
// relay container on the manager engine (see api.RelayContainer). The
// container's own process idles; the CLI execs `relay mux` once per command
// and opens a stream in it per connection to an agent (an older CLI execs
// `relay dial HOST:PORT` per connection, whose stdin and stdout are the
// connection). TLS runs end to end through it: the relay holds no
// credentials and sees only ciphertext.
package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/docker-fleet/fleet/shared/api"
)

// DialTimeout bounds the connection to an agent: the CLI waits for it.
const DialTimeout = 5 * time.Second

// Linger is how long the agent's answer may still flow after the CLI has
// closed its side; the CLI only half-closes when it is done, so this only
// bounds a relay process whose agent never closes.
var Linger = 10 * time.Second

// Main runs `fleet-agent relay ARGS…` and returns the exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	switch {
	case len(args) == 1 && args[0] == api.RelayIdle:
		// The container's process: keeps the container up for the execs.
		<-ctx.Done()
		return 0
	case len(args) == 2 && args[0] == api.RelayDial:
		ports, err := Ports(os.Getenv(api.EnvRelayPorts))
		if err == nil {
			err = Dial(ctx, args[1], ports, os.Stdin, os.Stdout)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	case len(args) == 1 && args[0] == api.RelayMux:
		ports, err := Ports(os.Getenv(api.EnvRelayPorts))
		if err == nil {
			err = Mux(ctx, ports, os.Stdin, os.Stdout)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	default:
		fmt.Fprintf(os.Stderr, "usage: fleet-agent %s %s | %s HOST:PORT | %s\n", api.RelayArg, api.RelayIdle, api.RelayDial, api.RelayMux)
		return 2
	}
}

// Ports parses the relay's allowed ports ("7477" or "7477,7478").
func Ports(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%s is not set: this relay may dial no port (run `docker fleet init`)", api.EnvRelayPorts)
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("%s=%q: %q is not a TCP port", api.EnvRelayPorts, s, f)
		}
		out = append(out, p)
	}
	return out, nil
}

// Dial connects to addr, which must use one of ports, announces the open
// connection with api.RelayReady on out, then copies in to the connection
// and the connection to out until the agent's side ends.
func Dial(ctx context.Context, addr string, ports []int, in io.Reader, out io.Writer) error {
	conn, err := dialAgent(ctx, addr, ports)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := out.Write([]byte{api.RelayReady}); err != nil {
		return err
	}
	return pipe(ctx, conn, in, out)
}

// dialAgent connects to addr, which must use one of ports.
func dialAgent(ctx context.Context, addr string, ports []int) (*net.TCPConn, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("relay: %q: %w", addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || !slices.Contains(ports, p) {
		return nil, fmt.Errorf("relay: refusing %s: port %s is not an agent port of this fleet (the relay dials only %s)", addr, port, joinPorts(ports))
	}
	d := net.Dialer{Timeout: DialTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	return c.(*net.TCPConn), nil
}

// maxAddr bounds the address line that starts a mux stream.
const maxAddr = 300

// Mux serves the yamux session the CLI runs over in and out (api.RelayMux)
// until the CLI ends it: each stream it opens is one connection to the
// agent its first line names, on one of ports.
func Mux(ctx context.Context, ports []int, in io.Reader, out io.Writer) error {
	cfg := yamux.DefaultConfig()
	cfg.MaxStreamWindowSize = api.RelayMuxWindow
	cfg.LogOutput = io.Discard
	sess, err := yamux.Server(stdio{in, out}, cfg)
	if err != nil {
		return err
	}
	defer sess.Close()
	go func() {
		<-ctx.Done()
		sess.Close()
	}()
	for {
		st, err := sess.Accept()
		if err != nil {
			return nil // the CLI is done, or gone
		}
		go serveStream(ctx, st, ports)
	}
}

// serveStream connects one mux stream to the agent it names.
func serveStream(ctx context.Context, st net.Conn, ports []int) {
	defer st.Close()
	addr, err := readAddr(st)
	var conn *net.TCPConn
	if err == nil {
		conn, err = dialAgent(ctx, addr, ports)
	}
	if err != nil {
		_, _ = st.Write(append([]byte{api.RelayRefused}, err.Error()...))
		return
	}
	defer conn.Close()
	if _, err := st.Write([]byte{api.RelayReady}); err != nil {
		return
	}
	_ = pipe(ctx, conn, st, st)
}

// readAddr reads a stream's first line, byte by byte: what follows it is
// the agent's.
func readAddr(r io.Reader) (string, error) {
	var line []byte
	var b [1]byte
	for len(line) < maxAddr {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", fmt.Errorf("relay: reading the address: %w", err)
		}
		if b[0] == '\n' {
			return string(line), nil
		}
		line = append(line, b[0])
	}
	return "", fmt.Errorf("relay: an address line longer than %d bytes", maxAddr)
}

// stdio is the relay process's stdin and stdout as one connection.
type stdio struct {
	io.Reader
	io.Writer
}

func (stdio) Close() error { return nil }

func pipe(ctx context.Context, conn *net.TCPConn, in io.Reader, out io.Writer) error {
	down := make(chan error, 1)
	go func() {
		_, err := io.Copy(out, conn)
		down <- err
	}()
	up := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, in)
		if err == nil {
			// The CLI is done sending: pass its EOF on, keep reading.
			err = conn.CloseWrite()
		}
		up <- err
	}()
	select {
	case err := <-down:
		// The agent closed: nothing more can reach the CLI.
		return ignoreClosed(err)
	case err := <-up:
		if err != nil {
			return ignoreClosed(err)
		}
	case <-ctx.Done():
		return nil
	}
	select {
	case err := <-down:
		return ignoreClosed(err)
	case <-time.After(Linger):
		return nil
	case <-ctx.Done():
		return nil
	}
}

// ignoreClosed treats the other side going away as the end, not a failure.
func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	return err
}

func joinPorts(ports []int) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ", ")
}
