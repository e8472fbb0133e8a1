package migrate

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ipprotoMPTCP is IPPROTO_MPTCP, which x/sys/unix does not name.
const ipprotoMPTCP = 262

// scanSocket checks the family and protocol of the process's socket fd:
// CRIU checkpoints unix, packet and netlink sockets, and IP sockets of
// TCP, UDP, UDP-Lite, ICMP and raw IP (criu/sockets.c), not MPTCP or SCTP.
// It looks through a copy of the descriptor (pidfd_getfd), which changes
// nothing of the socket; where the kernel offers no such copy, CRIU's own
// reason will do.
func scanSocket(f *findings, p process, fd int) {
	pidfd, err := unix.PidfdOpen(p.pid, 0)
	if err != nil {
		return
	}
	defer unix.Close(pidfd)
	sk, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return
	}
	defer unix.Close(sk)
	domain, err := unix.GetsockoptInt(sk, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return
	}
	proto, err := unix.GetsockoptInt(sk, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil {
		return
	}
	if reason := socketProblem(domain, proto); reason != "" {
		f.add(p, reason)
	}
}

// socketProblem is what CRIU cannot do with a socket of this family and
// protocol, or "".
func socketProblem(domain, proto int) string {
	switch domain {
	case unix.AF_UNIX, unix.AF_PACKET, unix.AF_NETLINK:
		return ""
	case unix.AF_INET, unix.AF_INET6:
		switch proto {
		case unix.IPPROTO_IP, unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_UDPLITE,
			unix.IPPROTO_ICMP, unix.IPPROTO_ICMPV6, unix.IPPROTO_RAW:
			return ""
		case ipprotoMPTCP:
			return mptcpAdvice
		case unix.IPPROTO_SCTP:
			return "has an SCTP socket, which CRIU cannot checkpoint: use TCP, or stop the program's SCTP service before migrating"
		}
		return fmt.Sprintf("has an IP socket of protocol %d, which CRIU cannot checkpoint", proto)
	}
	name := map[int]string{unix.AF_VSOCK: "vsock", unix.AF_ALG: "AF_ALG (kernel crypto)", unix.AF_XDP: "AF_XDP",
		unix.AF_BLUETOOTH: "Bluetooth", unix.AF_CAN: "CAN", unix.AF_TIPC: "TIPC"}[domain]
	if name == "" {
		name = "address family " + strconv.Itoa(domain)
	}
	return fmt.Sprintf("has a socket of %s, which CRIU cannot checkpoint", name)
}

// unixSock is a unix socket as sock_diag reports it.
type unixSock struct {
	peer uint32 // inode of the other end, 0 if none
	name string // bound path, "@…" if abstract
}

// outsidePeer is a container's unix socket whose other end is held by no
// process of the container.
type outsidePeer struct {
	proc process
	name string
}

func (o outsidePeer) reason() string {
	where := ""
	if o.name != "" {
		where = " (" + o.name + ")"
	}
	return "has a unix socket" + where + " connected to a process outside the container, which CRIU cannot carry along: " +
		"connect over the network instead, or keep both ends in the container"
}

// outsidePeers are the container's connected unix sockets (from its
// processes' descriptors) whose peer no process of the container holds.
func outsidePeers(held map[uint32]process, all map[uint32]unixSock) []outsidePeer {
	var out []outsidePeer
	for ino, p := range held {
		s, ok := all[ino]
		if !ok || s.peer == 0 {
			continue
		}
		if _, inside := held[s.peer]; !inside {
			name := s.name
			if name == "" {
				name = all[s.peer].name
			}
			out = append(out, outsidePeer{proc: p, name: name})
		}
	}
	return out
}

// unixSockets lists the unix sockets of the network namespace of pid, with
// their peers, through sock_diag in that namespace. It runs on a thread of
// its own that enters the namespace and ends with it.
func unixSockets(pid int) (map[uint32]unixSock, error) {
	type result struct {
		socks map[uint32]unixSock
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		ns, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "ns/net"))
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: err}
			return
		}
		socks, err := diagUnix()
		ch <- result{socks, err}
	}()
	r := <-ch
	return r.socks, r.err
}

// Of linux/unix_diag.h.
const (
	udiagShowName = 0x1
	udiagShowPeer = 0x4
	unixDiagName  = 0
	unixDiagPeer  = 2
)

// diagUnix dumps the unix sockets of the calling thread's network
// namespace (NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY).
func diagUnix() (map[uint32]unixSock, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	// nlmsghdr, then unix_diag_req: family, protocol, pad, states,
	// inode, show, cookie.
	req := make([]byte, unix.NLMSG_HDRLEN+24)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], 1)
	r := req[unix.NLMSG_HDRLEN:]
	r[0] = unix.AF_UNIX
	ne.PutUint32(r[4:], ^uint32(0))
	ne.PutUint32(r[12:], udiagShowName|udiagShowPeer)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	out := map[uint32]unixSock{}
	buf := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				return nil, fmt.Errorf("sock_diag: error reply")
			}
			// unix_diag_msg: family, type, state, pad, inode, cookie;
			// then its attributes.
			if len(m.Data) < 16 {
				continue
			}
			var s unixSock
			ino := ne.Uint32(m.Data[4:])
			for a := m.Data[16:]; len(a) >= 4; {
				l := int(ne.Uint16(a[0:]))
				if l < 4 || l > len(a) {
					break
				}
				v := a[4:l]
				switch ne.Uint16(a[2:]) {
				case unixDiagName:
					if len(v) > 0 && v[0] == 0 {
						s.name = "@" + string(v[1:])
					} else {
						s.name = strings.TrimRight(string(v), "\x00")
					}
				case unixDiagPeer:
					if len(v) >= 4 {
						s.peer = ne.Uint32(v)
					}
				}
				a = a[min((l+3)&^3, len(a)):]
			}
			out[ino] = s
		}
	}
}
