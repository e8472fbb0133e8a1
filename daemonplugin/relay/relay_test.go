package relay

import (
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/docker-fleet/fleet/shared/api"
)

// agent is a stand-in agent on a local port: it runs serve on each connection.
func agent(t *testing.T, serve func(*net.TCPConn)) (string, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c.(*net.TCPConn))
			}()
		}
	}()
	return ln.Addr().String(), ln.Addr().(*net.TCPAddr).Port
}

func TestDialCarriesBothWaysAndHalfCloses(t *testing.T) {
	// The agent answers only once the client's EOF arrives: the relay must
	// pass the half-close on and still carry the answer back.
	addr, port := agent(t, func(c *net.TCPConn) {
		b, _ := io.ReadAll(c)
		c.Write([]byte("got: " + string(b)))
	})
	var out bytes.Buffer
	if err := Dial(context.Background(), addr, []int{port}, strings.NewReader("hello"), &out); err != nil {
		t.Fatal(err)
	}
	if want := string(api.RelayReady) + "got: hello"; out.String() != want {
		t.Fatalf("out = %q, want %q", out.String(), want)
	}
}

func TestDialEndsWhenTheAgentCloses(t *testing.T) {
	addr, port := agent(t, func(c *net.TCPConn) { c.Write([]byte("bye")) })
	in, _ := io.Pipe() // the CLI never closes its side
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- Dial(context.Background(), addr, []int{port}, in, &out) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the relay outlived the agent's connection")
	}
	if want := string(api.RelayReady) + "bye"; out.String() != want {
		t.Fatalf("out = %q, want %q", out.String(), want)
	}
}

func TestDialRefusesOtherPorts(t *testing.T) {
	addr, port := agent(t, func(c *net.TCPConn) { t.Error("the relay connected to a port it must refuse") })
	var out bytes.Buffer
	err := Dial(context.Background(), addr, []int{port + 1}, strings.NewReader(""), &out)
	if err == nil || !strings.Contains(err.Error(), "not an agent port") {
		t.Fatalf("err = %v", err)
	}
	if out.Len() != 0 {
		t.Fatalf("wrote %q before refusing", out.String())
	}
}

func TestDialFailureWritesNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr, port := ln.Addr().String(), ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	var out bytes.Buffer
	err = Dial(context.Background(), addr, []int{port}, strings.NewReader(""), &out)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v", err)
	}
	if out.Len() != 0 {
		t.Fatalf("wrote %q for a failed dial", out.String())
	}
}

func TestPorts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		ok   bool
	}{
		{"7477", []int{7477}, true},
		{"7477, 8000", []int{7477, 8000}, true},
		{"", nil, false},
		{"7477,x", nil, false},
		{"70000", nil, false},
		{"0", nil, false},
	} {
		got, err := Ports(tc.in)
		if (err == nil) != tc.ok || strconv.Quote(joinPorts(got)) != strconv.Quote(joinPorts(tc.want)) {
			t.Errorf("Ports(%q) = %v, %v", tc.in, got, err)
		}
	}
}

// muxClient runs Mux on one end of a pipe and returns a yamux client on
// the other: the CLI's side of `relay mux`.
func muxClient(t *testing.T, ports []int) *yamux.Session {
	t.Helper()
	cli, relay := net.Pipe()
	go func() { _ = Mux(context.Background(), ports, relay, relay) }()
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	sess, err := yamux.Client(cli, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	return sess
}

func TestMuxCarriesStreamsAtOnceAndHalfCloses(t *testing.T) {
	addr, port := agent(t, func(c *net.TCPConn) {
		b, _ := io.ReadAll(c)
		c.Write([]byte("got: " + string(b)))
	})
	sess := muxClient(t, []int{port})
	// Two streams open at once, each its own connection.
	var streams []*yamux.Stream
	for range 2 {
		st, err := sess.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		st.Write([]byte(addr + "\n"))
		streams = append(streams, st)
	}
	for i, st := range streams {
		st.Write([]byte("hello " + strconv.Itoa(i)))
		st.Close() // half: the answer still comes
		b, err := io.ReadAll(st)
		if err != nil {
			t.Fatal(err)
		}
		if want := string(api.RelayReady) + "got: hello " + strconv.Itoa(i); string(b) != want {
			t.Fatalf("stream %d: %q, want %q", i, b, want)
		}
	}
}

func TestMuxRefusesOtherPortsWithTheReason(t *testing.T) {
	addr, port := agent(t, func(c *net.TCPConn) {})
	sess := muxClient(t, []int{port + 1})
	st, err := sess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte(addr + "\n"))
	b, _ := io.ReadAll(st)
	if len(b) == 0 || b[0] != api.RelayRefused || !strings.Contains(string(b[1:]), "is not an agent port of this fleet") {
		t.Fatalf("answer %q", b)
	}
}
