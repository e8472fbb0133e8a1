package agent

import (
	"context"
	"net"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/docker-fleet/fleet/shared/agentclient"
)

// userTimeout is how long data the agent sent may stay unacknowledged
// before the kernel ends the connection. Keep-alive probes only an idle
// connection: a destination whose 100 Continue is in flight when the link
// is cut is not idle, and its kernel would retransmit for a quarter of an
// hour while it waits for a stream that will never come. Shorter than the
// source's stall limit, so the destination has dropped its twin by the
// time the source gives up and resumes its container.
const userTimeout = 10 * time.Second

// listen opens the agent's TCP port. Accepted connections inherit the
// listening socket's user timeout, and get the fleet's keep-alive.
func listen(ctx context.Context, port int) (net.Listener, error) {
	lc := net.ListenConfig{
		KeepAliveConfig: agentclient.KeepAlive,
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(userTimeout.Milliseconds()))
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
	return lc.Listen(ctx, "tcp", net.JoinHostPort("", strconv.Itoa(port)))
}
