package dial

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
)

// execConn is a net.Conn over the stdio of an exec attached without a TTY:
// writes go to the process's stdin, reads come from its stdout (the engine
// multiplexes stdout and stderr on one stream; stdcopy takes them apart),
// and its stderr is kept for the error message.
//
// Both directions pass through a net.Pipe so that deadlines hold whatever
// carries the engine's API: an ssh context's connection ignores them.
type execConn struct {
	raw    net.Conn // the engine connection the exec is attached to
	in     net.Conn // our end of the stdin pipe
	out    net.Conn // our end of the stdout pipe
	stderr *tail
	addr   relayAddr

	done    chan struct{} // closed when the exec's output has ended
	copyErr error         // why it ended, when not at EOF; set before done

	closeOnce sync.Once
	closed    chan struct{}
}

// newExecConn starts moving bytes between the pipes and the attached stream:
// output is what the engine sends (multiplexed), closeWrite half-closes raw.
func newExecConn(raw net.Conn, output io.Reader, closeWrite func() error, addr string) *execConn {
	in, inPeer := net.Pipe()
	out, outPeer := net.Pipe()
	c := &execConn{
		raw: raw, in: in, out: out, stderr: &tail{max: 4096}, addr: relayAddr(addr),
		done: make(chan struct{}), closed: make(chan struct{}),
	}
	go func() {
		_, err := stdcopy.StdCopy(outPeer, c.stderr, output)
		c.copyErr = err
		close(c.done)
		outPeer.Close()
	}()
	go func() {
		_, err := io.Copy(raw, inPeer)
		if err == nil {
			// CloseWrite on our side: the process sees EOF on its stdin.
			err = closeWrite()
		}
		if err != nil {
			// Writes can no longer arrive: fail them rather than block.
			inPeer.Close()
		}
	}()
	return c
}

func (c *execConn) Read(b []byte) (int, error) {
	n, err := c.out.Read(b)
	if err == io.EOF {
		<-c.done
		select {
		case <-c.closed:
		default:
			if c.copyErr != nil {
				return n, fmt.Errorf("the relay's stream broke: %w", c.copyErr)
			}
			if msg := c.stderr.String(); msg != "" {
				return n, fmt.Errorf("the relay ended: %s", msg)
			}
		}
	}
	return n, err
}

func (c *execConn) Write(b []byte) (int, error) { return c.in.Write(b) }

// CloseWrite ends the process's stdin; its output can still be read.
func (c *execConn) CloseWrite() error { return c.in.Close() }

func (c *execConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.in.Close()
		c.out.Close()
		c.raw.Close()
	})
	return nil
}

func (c *execConn) LocalAddr() net.Addr  { return relayAddr("cli") }
func (c *execConn) RemoteAddr() net.Addr { return c.addr }

func (c *execConn) SetDeadline(t time.Time) error {
	return errors.Join(c.in.SetWriteDeadline(t), c.out.SetReadDeadline(t))
}
func (c *execConn) SetReadDeadline(t time.Time) error  { return c.out.SetReadDeadline(t) }
func (c *execConn) SetWriteDeadline(t time.Time) error { return c.in.SetWriteDeadline(t) }

// relayAddr is an address reached through the relay.
type relayAddr string

func (a relayAddr) Network() string { return "fleet-relay" }
func (a relayAddr) String() string  { return string(a) }

// tail keeps the last max bytes written to it (a process's stderr).
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(bytes.ToValidUTF8(t.b, nil)))
}
