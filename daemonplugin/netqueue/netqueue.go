// Package netqueue holds the packets a network namespace's iptables rules
// send to a netfilter queue (NFQUEUE) until they are released or dropped:
// the netlink side of a queue, bound from inside the namespace, that
// keeps every packet and gives them all one verdict at the end.
package netqueue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Message types and attributes of nfnetlink_queue (linux/netfilter/nfnetlink_queue.h).
const (
	subsysQueue     = 3
	msgPacket       = 0
	msgConfig       = 2
	msgVerdictBatch = 3

	attrPacketHdr  = 1
	attrVerdictHdr = 2
	attrCfgCmd     = 1
	attrCfgParams  = 2

	cfgCmdBind = 1
	copyMeta   = 1

	verdictAccept = 1
)

// Queue is a bound queue of one network namespace. Packets wait in the
// kernel (up to its queue's length, then they are dropped) until Release
// accepts them all, or Close drops them.
type Queue struct {
	f     *os.File // the netlink socket, non-blocking: Close ends a read
	num   uint16
	count atomic.Int64
	maxID atomic.Uint32
}

// Open binds queue num in the network namespace of process pid (procfs
// at proc), and fails if the kernel refuses the binding.
func Open(proc string, pid int, num uint16) (*Queue, error) {
	ns, err := os.Open(fmt.Sprintf("%s/%d/ns/net", proc, pid))
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	fd, err := socketIn(int(ns.Fd()))
	if err != nil {
		return nil, fmt.Errorf("netlink socket in the namespace of %d: %w", pid, err)
	}
	q := &Queue{f: os.NewFile(uintptr(fd), "nfqueue"), num: num}
	cmd := []byte{cfgCmdBind, 0, 0, 0}
	binary.BigEndian.PutUint16(cmd[2:], unix.AF_INET)
	params := make([]byte, 5)
	binary.BigEndian.PutUint32(params, 0) // no payload: the verdict needs the id alone
	params[4] = copyMeta
	if err := q.request(message(msgConfig, num, unix.NLM_F_ACK, attr(attrCfgCmd, cmd), attr(attrCfgParams, params))); err != nil {
		_ = q.f.Close()
		return nil, fmt.Errorf("binding queue %d: %w", num, err)
	}
	go q.read()
	return q, nil
}

// request sends msg and reads the kernel's acknowledgement.
func (q *Queue) request(msg []byte) error {
	if _, err := q.f.Write(msg); err != nil {
		return err
	}
	_ = q.f.SetReadDeadline(time.Now().Add(2 * time.Second))
	defer func() { _ = q.f.SetReadDeadline(time.Time{}) }()
	buf := make([]byte, 4096)
	for {
		n, err := q.f.Read(buf)
		if err != nil {
			return err
		}
		if errno, ok := ack(buf[:n]); ok {
			if errno != 0 {
				return unix.Errno(errno)
			}
			return nil
		}
	}
}

// socketIn opens a non-blocking netfilter netlink socket in the network
// namespace ns: a socket stays in the namespace it was made in.
func socketIn(ns int) (int, error) {
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, err}
			return
		}
		defer self.Close()
		if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, err}
			return
		}
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
		if serr := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); serr != nil {
			// The thread stays locked and ends with this goroutine: it
			// is in the wrong namespace.
			if err == nil {
				_ = unix.Close(fd)
			}
			ch <- result{-1, serr}
			return
		}
		runtime.UnlockOSThread()
		if err == nil {
			if err = unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
				_ = unix.Close(fd)
			}
		}
		ch <- result{fd, err}
	}()
	r := <-ch
	return r.fd, r.err
}

// read counts the queued packets (and keeps the socket's buffer from
// filling) until the queue closes.
func (q *Queue) read() {
	buf := make([]byte, 64<<10)
	for {
		n, err := q.f.Read(buf)
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				continue
			}
			return
		}
		for _, id := range packetIDs(buf[:n]) {
			q.count.Add(1)
			if id > q.maxID.Load() {
				q.maxID.Store(id)
			}
		}
	}
}

// Held is how many packets the queue has held, as far as it has read.
func (q *Queue) Held() int64 { return q.count.Load() }

// Release accepts every packet queued so far, read or not, then closes the
// queue. Ids grow by one a packet: a batch verdict for an id far past the
// last one read covers the ones not read yet (the kernel compares ids as
// serial numbers, so not too far).
func (q *Queue) Release() error {
	hdr := make([]byte, 8)
	binary.BigEndian.PutUint32(hdr, verdictAccept)
	binary.BigEndian.PutUint32(hdr[4:], q.maxID.Load()+1<<30)
	_, err := q.f.Write(message(msgVerdictBatch, q.num, 0, attr(attrVerdictHdr, hdr)))
	if errors.Is(err, unix.ENOENT) {
		err = nil // nothing was queued
	}
	q.Close()
	return err
}

// Close unbinds the queue: what waits in it is dropped.
func (q *Queue) Close() { _ = q.f.Close() }

// message is a netfilter netlink request of queue num.
func message(typ uint8, num uint16, flags uint16, attrs ...[]byte) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN+4)
	binary.NativeEndian.PutUint16(b[4:], subsysQueue<<8|uint16(typ))
	binary.NativeEndian.PutUint16(b[6:], unix.NLM_F_REQUEST|flags)
	b[unix.NLMSG_HDRLEN] = unix.AF_UNSPEC
	b[unix.NLMSG_HDRLEN+1] = 0 // NFNETLINK_V0
	binary.BigEndian.PutUint16(b[unix.NLMSG_HDRLEN+2:], num)
	for _, a := range attrs {
		b = append(b, a...)
	}
	binary.NativeEndian.PutUint32(b, uint32(len(b)))
	return b
}

// attr is one netlink attribute, padded to 4 bytes.
func attr(typ uint16, data []byte) []byte {
	b := make([]byte, 4, 4+len(data)+3)
	binary.NativeEndian.PutUint16(b, uint16(4+len(data)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// ack finds the kernel's acknowledgement in a netlink read: its error
// number, 0 for success.
func ack(b []byte) (int32, bool) {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			break
		}
		if binary.NativeEndian.Uint16(b[4:]) == unix.NLMSG_ERROR && l >= unix.NLMSG_HDRLEN+4 {
			return -int32(binary.NativeEndian.Uint32(b[unix.NLMSG_HDRLEN:])), true
		}
		b = b[min((l+3)&^3, len(b)):]
	}
	return 0, false
}

// packetIDs are the ids of the queued packets a netlink read carries.
func packetIDs(b []byte) []uint32 {
	var ids []uint32
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b))
		typ := binary.NativeEndian.Uint16(b[4:])
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			break
		}
		if typ == subsysQueue<<8|msgPacket && l >= unix.NLMSG_HDRLEN+4 {
			attrs := b[unix.NLMSG_HDRLEN+4 : l]
			for len(attrs) >= 4 {
				al := int(binary.NativeEndian.Uint16(attrs))
				at := binary.NativeEndian.Uint16(attrs[2:]) & 0x3fff
				if al < 4 || al > len(attrs) {
					break
				}
				if at == attrPacketHdr && al >= 8 {
					ids = append(ids, binary.BigEndian.Uint32(attrs[4:]))
				}
				attrs = attrs[min((al+3)&^3, len(attrs)):]
			}
		}
		b = b[min((l+3)&^3, len(b)):]
	}
	return ids
}
