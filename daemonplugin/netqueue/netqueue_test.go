package netqueue

import (
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
)

// inNetns runs f on a thread in process pid's network namespace.
func inNetns(t *testing.T, pid int, f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		ns, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/net")
		if err != nil {
			t.Error(err)
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			t.Error(err)
			return
		}
		f()
	}()
	<-done
}

// A connection to a port whose packets the namespace queues waits until
// Release, and then is made; one to a queue that is closed is not.
func TestQueueHoldsUntilRelease(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a network namespace and iptables)")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("no iptables")
	}
	holder := exec.Command("unshare", "--net", "sleep", "60")
	assert.NilError(t, holder.Start())
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	pid := holder.Process.Pid
	time.Sleep(100 * time.Millisecond)
	nsenter := func(args ...string) {
		out, err := exec.Command("nsenter", append([]string{"--net=/proc/" + strconv.Itoa(pid) + "/ns/net", "--"}, args...)...).CombinedOutput()
		assert.NilError(t, err, string(out))
	}
	nsenter("ip", "link", "set", "lo", "up")
	nsenter("iptables", "-I", "INPUT", "-p", "tcp", "--dport", "7", "--syn", "-j", "NFQUEUE", "--queue-num", "4711")

	var ln net.Listener
	inNetns(t, pid, func() {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:7")
		assert.Check(t, err)
	})
	assert.Assert(t, ln != nil)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()

	q, err := Open("/proc", pid, 4711)
	assert.NilError(t, err)
	dialed := make(chan time.Time, 1)
	go inNetns(t, pid, func() {
		c, err := net.DialTimeout("tcp", "127.0.0.1:7", 10*time.Second)
		if err == nil {
			_ = c.Close()
			dialed <- time.Now()
		}
		close(dialed)
	})
	time.Sleep(500 * time.Millisecond)
	select {
	case <-dialed:
		t.Fatal("the connection was made while its SYN was held")
	default:
	}
	released := time.Now()
	assert.NilError(t, q.Release())
	at, ok := <-dialed
	assert.Assert(t, ok, "the connection failed after the release")
	// Released at once, not at the client's next SYN (1 s later).
	assert.Check(t, at.Sub(released) < 500*time.Millisecond, "made %s after the release", at.Sub(released))

	// Closed: what it held is dropped, and so is what comes after.
	q, err = Open("/proc", pid, 4711)
	assert.NilError(t, err)
	failed := make(chan error, 1)
	go inNetns(t, pid, func() {
		c, err := net.DialTimeout("tcp", "127.0.0.1:7", 2500*time.Millisecond)
		if err == nil {
			_ = c.Close()
		}
		failed <- err
	})
	time.Sleep(300 * time.Millisecond)
	q.Close()
	assert.Check(t, <-failed != nil, "a connection was made through a closed queue")
}

// A queue no namespace has is refused, not bound in silence.
func TestOpenRefusesMissingNamespace(t *testing.T) {
	_, err := Open("/proc", 1<<30, 4711)
	assert.Check(t, err != nil)
}
