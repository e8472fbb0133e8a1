package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// wireBytes is what the raw TCP measure sends: enough to reach the link's
// steady rate, as the migration streams do.
const wireBytes = 1 << 30

// wireRate measures plain TCP from the source host's network namespace to
// the destination's (the simulator's hosts), in bytes a second: the wire a
// migration stream runs on, without TLS, tar or any agent.
func wireRate() float64 {
	self, err := os.Executable()
	check(err)
	addr := net.JoinHostPort(hostIP(dst), "17999")
	sink := exec.Command("nsenter", "--net=/run/netns/"+dst, self, "-wire-sink", addr)
	out, err := sink.StdoutPipe()
	check(err)
	sink.Stderr = os.Stderr
	check(sink.Start())
	defer func() { _ = sink.Process.Kill(); _ = sink.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		fail("wire sink: %q %v", line, err)
	}
	res, err := exec.Command("nsenter", "--net=/run/netns/"+src, self, "-wire-send", addr).CombinedOutput()
	if err != nil {
		fail("wire send: %v: %s", err, res)
	}
	secs, err := strconv.ParseFloat(strings.TrimSpace(string(res)), 64)
	check(err)
	return wireBytes / secs
}

// hostIP is a simulated host's address.
func hostIP(h string) string {
	out, err := exec.Command("ip", "-n", h, "-o", "-4", "addr", "show", "dev", "eth0").Output()
	check(err)
	f := strings.Fields(string(out))
	for i, w := range f {
		if w == "inet" && i+1 < len(f) {
			return strings.Split(f[i+1], "/")[0]
		}
	}
	fail("no address on %s", h)
	return ""
}

// wireSink reads one connection to its end and answers a byte.
func wireSink(addr string) {
	ln, err := net.Listen("tcp", addr)
	check(err)
	fmt.Println("ready")
	c, err := ln.Accept()
	check(err)
	_, err = io.Copy(io.Discard, c)
	check(err)
	_, _ = c.Write([]byte{1})
	_ = c.Close()
}

// wireSend sends wireBytes and prints the seconds until the sink has them.
func wireSend(addr string) {
	c, err := net.Dial("tcp", addr)
	check(err)
	buf := make([]byte, 256<<10)
	t0 := time.Now()
	for n := 0; n < wireBytes; n += len(buf) {
		_, err := c.Write(buf)
		check(err)
	}
	check(c.(*net.TCPConn).CloseWrite())
	_, err = c.Read(buf[:1])
	check(err)
	fmt.Printf("%.6f\n", time.Since(t0).Seconds())
}
