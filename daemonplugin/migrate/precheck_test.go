package migrate

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/daemonplugin/workloads"
)

func TestFdProblem(t *testing.T) {
	for link, want := range map[string]string{
		"/var/lib/x":                "",
		"pipe:[123]":                "",
		"socket:[77]":               "",
		"anon_inode:[eventfd]":      "",
		"anon_inode:[eventpoll]":    "",
		"anon_inode:[timerfd]":      "",
		"anon_inode:inotify":        "",
		"anon_inode:[io_uring]":     "io_uring",
		"anon_inode:[userfaultfd]":  "of kind userfaultfd",
		"anon_inode:[perf_event]":   "of kind perf_event",
		"anon_inode:[some_new_one]": "CRIU cannot checkpoint",
	} {
		got := fdProblem(link)
		if want == "" {
			assert.Check(t, is.Equal(got, ""), link)
		} else {
			assert.Check(t, is.Contains(got, want), link)
		}
	}
	assert.Check(t, is.Contains(fdProblem("anon_inode:[io_uring]"), "innodb_use_native_aio=0"))
}

func TestSocketProblem(t *testing.T) {
	for _, ok := range [][2]int{{unix.AF_UNIX, 0}, {unix.AF_INET, unix.IPPROTO_TCP}, {unix.AF_INET6, unix.IPPROTO_UDP},
		{unix.AF_INET, unix.IPPROTO_ICMP}, {unix.AF_NETLINK, 0}, {unix.AF_PACKET, 3}} {
		assert.Check(t, is.Equal(socketProblem(ok[0], ok[1]), ""), "%v", ok)
	}
	assert.Check(t, is.Contains(socketProblem(unix.AF_INET6, ipprotoMPTCP), "GODEBUG=multipathtcp=0"))
	assert.Check(t, is.Contains(socketProblem(unix.AF_INET, unix.IPPROTO_SCTP), "SCTP"))
	assert.Check(t, is.Contains(socketProblem(unix.AF_VSOCK, 0), "vsock"))
}

func TestDeviceProblem(t *testing.T) {
	st, err := os.Stat("/dev/null")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(deviceProblem("/dev/null", st.Mode(), st.Sys()), ""))
	fuse := &unix.Stat_t{Rdev: unix.Mkdev(10, 229)}
	assert.Check(t, is.Contains(deviceProblem("/dev/fuse", os.ModeDevice|os.ModeCharDevice, fuse), "/dev/fuse (10:229)"))
	tun := &unix.Stat_t{Rdev: unix.Mkdev(10, 200)}
	assert.Check(t, is.Equal(deviceProblem("/dev/net/tun", os.ModeDevice|os.ModeCharDevice, tun), ""))
	pts := &unix.Stat_t{Rdev: unix.Mkdev(136, 3)}
	assert.Check(t, is.Equal(deviceProblem("/dev/pts/3", os.ModeDevice|os.ModeCharDevice, pts), ""))
	disk := &unix.Stat_t{Rdev: unix.Mkdev(8, 0)}
	assert.Check(t, is.Contains(deviceProblem("/dev/sda", os.ModeDevice, disk), "CRIU cannot checkpoint"))
}

func TestFindingsOneLinePerProgramAndReason(t *testing.T) {
	var f findings
	for pid := 10; pid < 17; pid++ {
		f.add(process{pid: pid + 1000, nspid: pid, comm: "nginx"}, "uses x")
	}
	f.add(process{pid: 1003, nspid: 3, comm: "db"}, "uses x")
	f.add(process{pid: 1003, nspid: 3, comm: "db"}, "uses x")
	assert.Check(t, is.DeepEqual(f.list(), []string{
		"nginx (pids 10, 11, 12, 13, 14 and 2 more) uses x",
		"db (pid 3) uses x",
	}))
}

// ioUringSetup opens an io_uring, as a server that uses it does.
func ioUringSetup(t *testing.T) int {
	var params [120]byte // struct io_uring_params
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 4, uintptr(unsafe.Pointer(&params)), 0)
	if errno != 0 {
		t.Skipf("io_uring_setup: %v", errno)
	}
	return int(fd)
}

func TestScanFindsIOUringInAProcess(t *testing.T) {
	self := os.Getpid()
	assert.Check(t, is.Len(scanProcesses([]int{self}, self, true, "h1"), 0), "the test process itself is checkpointable")
	fd := ioUringSetup(t)
	defer unix.Close(fd)
	got := scanProcesses([]int{self}, self, true, "h1")
	assert.Assert(t, is.Len(got, 1))
	assert.Check(t, is.Contains(got[0], "uses io_uring"))
	assert.Check(t, is.Contains(got[0], "(pid "))
}

func TestScanFindsMPTCP(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, ipprotoMPTCP)
	if err != nil {
		t.Skipf("no MPTCP on this kernel: %v", err)
	}
	defer unix.Close(fd)
	self := os.Getpid()
	got := strings.Join(scanProcesses([]int{self}, self, true, "h1"), "\n")
	assert.Check(t, is.Contains(got, "multipath TCP (MPTCP)"))
}

func TestUnixPeerOutside(t *testing.T) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	assert.NilError(t, err)
	defer unix.Close(pair[0])
	defer unix.Close(pair[1])
	ino := func(fd int) uint32 {
		var st unix.Stat_t
		assert.NilError(t, unix.Fstat(fd, &st))
		return uint32(st.Ino)
	}
	a, b := ino(pair[0]), ino(pair[1])
	socks, err := unixSockets(os.Getpid())
	if errors.Is(err, unix.EPERM) {
		t.Skip("entering a network namespace needs CAP_SYS_ADMIN")
	}
	assert.NilError(t, err)
	assert.Check(t, is.Equal(socks[a].peer, b))
	assert.Check(t, is.Equal(socks[b].peer, a))

	p := process{pid: 1, comm: "app"}
	assert.Check(t, is.Len(outsidePeers(map[uint32]process{a: p, b: p}, socks), 0), "both ends inside")
	out := outsidePeers(map[uint32]process{a: p}, socks)
	assert.Assert(t, is.Len(out, 1), "one end outside")
	assert.Check(t, is.Contains(out[0].reason(), "outside the container"))

	// A path the socket is bound to names it.
	path := t.TempDir() + "/s.sock"
	ln, err := net.Listen("unix", path)
	assert.NilError(t, err)
	defer ln.Close()
	c, err := net.Dial("unix", path)
	assert.NilError(t, err)
	defer c.Close()
	// Until accepted, the other end has no inode to report.
	srv, err := ln.Accept()
	assert.NilError(t, err)
	defer srv.Close()
	f, err := c.(*net.UnixConn).File()
	assert.NilError(t, err)
	defer f.Close()
	socks, err = unixSockets(os.Getpid())
	assert.NilError(t, err)
	out = outsidePeers(map[uint32]process{ino(int(f.Fd())): p}, socks)
	assert.Assert(t, is.Len(out, 1))
	assert.Check(t, is.Contains(out[0].reason(), path))
}

func TestScanNonRootWhereCRIUCannotReadLimits(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to start a process of another user")
	}
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1000, Gid: 1000}}
	assert.NilError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	assert.Check(t, is.Len(scanProcesses([]int{pid}, pid, true, "h1"), 0), "a CRIU that reads other users' limits")
	got := scanProcesses([]int{pid}, pid, false, "h1")
	assert.Assert(t, is.Len(got, 1))
	assert.Check(t, is.Contains(got[0], "sleep (pid "))
	assert.Check(t, is.Contains(got[0], "runs as user 1000 (group 1000)"))
	assert.Check(t, is.Contains(got[0], "CAP_SYS_RESOURCE on h1"))
}

// TestPrecheckHostNetwork: a container on its host's network is refused
// before anything is frozen, in words that name network_mode: host.
func TestPrecheckHostNetwork(t *testing.T) {
	m := &Migrator{Workloads: &workloads.Manager{}}
	// Pid 0: no processes to look at, only the configuration.
	c := container.InspectResponse{HostConfig: &container.HostConfig{NetworkMode: "host"}, State: &container.State{}}
	assert.Check(t, is.DeepEqual(m.precheck(context.Background(), c),
		[]string{"it uses its host's network (network_mode: host), which cannot move with it"}))
	c.HostConfig.NetworkMode = "fleet"
	assert.Check(t, is.Len(m.precheck(context.Background(), c), 0))
}
