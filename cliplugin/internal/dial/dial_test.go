package dial

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/hashicorp/yamux"

	"github.com/docker-fleet/fleet/packaging"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
)

// frame is one chunk of an engine's multiplexed exec stream.
func frame(stream byte, p []byte) []byte {
	h := make([]byte, 8, 8+len(p))
	h[0] = stream
	binary.BigEndian.PutUint32(h[4:], uint32(len(p)))
	return append(h, p...)
}

// fakeExec is an attached exec: engine plays the engine's side of a real
// TCP connection (which can half-close, like the engine's).
func fakeExec(t *testing.T, engine func(*net.TCPConn)) *execConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		engine(c.(*net.TCPConn))
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := newExecConn(raw, bufio.NewReader(raw), raw.(*net.TCPConn).CloseWrite, "10.0.0.2:7477")
	t.Cleanup(func() { c.Close() })
	return c
}

func TestExecConnCarriesBytesAndHalfCloses(t *testing.T) {
	c := fakeExec(t, func(e *net.TCPConn) {
		e.Write(frame(1, []byte{api.RelayReady}))
		in, _ := io.ReadAll(e) // until the CLI's CloseWrite
		e.Write(frame(1, append([]byte("got: "), in...)))
	})
	r := &Relay{Context: "m"}
	if err := r.awaitReady(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "got: hello" {
		t.Fatalf("read %q, %v", got, err)
	}
}

func TestFailedDialNamesTheAgentHop(t *testing.T) {
	c := fakeExec(t, func(e *net.TCPConn) {
		e.Write(frame(2, []byte("dial tcp 10.0.0.2:7477: connect: connection refused\n")))
	})
	err := (&Relay{Context: "m"}).awaitReady(context.Background(), c)
	var de *Error
	if !errors.As(err, &de) || de.Hop != HopAgent || !errdefs.IsUnavailable(err) {
		t.Fatalf("err = %#v", err)
	}
	for _, want := range []string{`docker context "m"`, "10.0.0.2:7477", "connection refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
}

func TestReadDeadline(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	c := fakeExec(t, func(e *net.TCPConn) { <-block })
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v, want a timeout", err)
	}
}

func TestAwaitReadyHonoursContext(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	c := fakeExec(t, func(e *net.TCPConn) { <-block })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := (&Relay{}).awaitReady(ctx, c); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestExecErrorKinds(t *testing.T) {
	r := &Relay{Context: "m"}
	missing := r.execError(errdefs.ErrNotFound.WithMessage("No such container: fleet-relay"))
	if !errdefs.IsFailedPrecondition(missing) || !strings.Contains(missing.Error(), "docker fleet init") {
		t.Errorf("missing relay: %v", missing)
	}
	stopped := r.execError(errdefs.ErrConflict.WithMessage("Container abc is not running"))
	if !errdefs.IsFailedPrecondition(stopped) || !strings.Contains(stopped.Error(), "is not running") {
		t.Errorf("stopped relay: %v", stopped)
	}
}

func TestTransportIsRememberedPerContext(t *testing.T) {
	dir := t.TempDir()
	if tr, err := LoadTransport(dir, "prod"); err != nil || tr != ViaRelay {
		t.Fatalf("default: %v, %v", tr, err)
	}
	if err := SaveTransport(dir, "prod", Direct); err != nil {
		t.Fatal(err)
	}
	if tr, _ := LoadTransport(dir, "prod"); tr != Direct {
		t.Fatalf("after --direct: %v", tr)
	}
	if tr, _ := LoadTransport(dir, "other"); tr != ViaRelay {
		t.Fatalf("another context: %v", tr)
	}
	if _, err := os.Stat(filepath.Join(dir, "fleet", "contexts", "prod.json")); err != nil {
		t.Fatal(err)
	}
	if err := SaveTransport(dir, "prod", ViaRelay); err != nil {
		t.Fatal(err)
	}
	if tr, _ := LoadTransport(dir, "prod"); tr != ViaRelay {
		t.Fatalf("after --direct=false: %v", tr)
	}
	if err := SaveTransport(dir, "../x", Direct); err == nil {
		t.Fatal("a context name that leaves the directory was accepted")
	}
}

func TestRelaySpecIsLeastPrivilege(t *testing.T) {
	s, err := relaySpec("abc", []int{7477, 7477})
	if err != nil {
		t.Fatal(err)
	}
	h := s.HostConfig
	if h.NetworkMode != "host" || !h.ReadonlyRootfs || len(h.CapDrop) != 1 || h.CapDrop[0] != "ALL" ||
		len(h.Mounts) != 0 || len(h.Binds) != 0 || h.Privileged || h.Memory == 0 || s.Config.User != relayUser {
		t.Fatalf("relay spec: %+v %+v", s.Config, h)
	}
	if got := s.Config.Env; len(got) != 1 || got[0] != api.EnvRelayPorts+"=7477" {
		t.Fatalf("env %v", got)
	}
	other, _ := relaySpec("abc", []int{7478})
	newer, _ := relaySpec("abd", []int{7477})
	d := s.Config.Labels[labels.Relay]
	if d == "" || d == other.Config.Labels[labels.Relay] || d == newer.Config.Labels[labels.Relay] {
		t.Fatal("the spec digest does not follow the ports and the build")
	}
}

func TestAgentBinaryFromPackage(t *testing.T) {
	gz, err := packaging.AgentPluginGz()
	if errors.Is(err, packaging.ErrNoAgent) {
		t.Skip("built without the agent package")
	}
	if err != nil {
		t.Fatal(err)
	}
	bin, err := agentBinary(gz)
	if err != nil {
		t.Fatal(err)
	}
	if len(bin) < 4 || string(bin[1:4]) != "ELF" {
		t.Fatal("not an executable")
	}
}

func TestClosingARelayStreamEndsItsRead(t *testing.T) {
	cli, relay := net.Pipe()
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	server, err := yamux.Server(relay, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	go func() {
		st, err := server.AcceptStream()
		if err == nil {
			defer st.Close()
			time.Sleep(time.Minute) // an agent that sends nothing more
		}
	}()
	client, err := yamux.Client(cli, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	st, err := client.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	c := relayStream{st}
	read := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		read <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-read:
		if err == nil {
			t.Fatal("a read of a closed stream succeeded")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a read went on waiting after Close")
	}
}
