package migrate

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"

	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
)

// The check before the freeze: what CRIU would refuse is found by looking
// at the container's processes through the host's procfs while they run,
// so that such a container is refused in words a user can act on, before
// anything is frozen, announced or sent. Only what is sure to fail is
// refused; CRIU's own reasons still explain whatever else fails.

// procRoot is the host's procfs: the agent shares the host's pid namespace.
var procRoot = "/proc"

// mptcpAdvice is what to do about an MPTCP socket, found before the freeze
// or in CRIU's log.
const mptcpAdvice = "has a multipath TCP (MPTCP) socket, which CRIU cannot checkpoint; " +
	"Go 1.24 and later listen with MPTCP by default: run the program with GODEBUG=multipathtcp=0"

// Check answers `migrate --check`: whether the container can be
// checkpointed on this node, and if not why. It changes nothing.
func (m *Migrator) Check(ctx context.Context, req api.CheckRequest) (api.CheckResult, error) {
	res, err := m.Engine.ContainerInspect(ctx, req.Container, client.ContainerInspectOptions{})
	if err != nil {
		return api.CheckResult{}, fmt.Errorf("%s on %s: %w", req.Container, m.Node, err)
	}
	c := res.Container
	out := api.CheckResult{Container: strings.TrimPrefix(c.Name, "/"), Node: m.Node}
	if err := checkable(c, req.Container, m.Node); err != nil {
		return out, err
	}
	out.Problems = m.precheck(ctx, c)
	out.OK = len(out.Problems) == 0
	return out, nil
}

// hostNetworkProblem is why a container on its host's network cannot be
// checkpointed for another node: its sockets and addresses are its host's.
const hostNetworkProblem = "it uses its host's network (network_mode: host), which cannot move with it"

// onHostNetwork says whether c runs on its host's network.
func onHostNetwork(c container.InspectResponse) bool {
	return c.HostConfig != nil && c.HostConfig.NetworkMode.IsHost()
}

// checkable refuses what is no live migration at all.
func checkable(c container.InspectResponse, name, node string) error {
	if _, ok := c.Config.Labels[labels.Service]; !ok {
		return workloads.Refuse(errdefs.ErrInvalidArgument, "%s on %s is not a fleet container", name, node)
	}
	if !c.State.Running {
		return workloads.Refuse(errdefs.ErrFailedPrecondition, "%s on %s is %s, not running: only a running container is live-migrated", name, node, c.State.Status)
	}
	return nil
}

// refusePrecheck is the error of a migration the check stopped.
func refusePrecheck(name, node string, problems []string) error {
	return workloads.Refuse(errdefs.ErrFailedPrecondition, "%s cannot migrate, it keeps running on %s untouched: %s",
		name, node, strings.Join(problems, "; "))
}

// precheck lists what stops the container's checkpoint, in a user's words.
func (m *Migrator) precheck(ctx context.Context, c container.InspectResponse) []string {
	var out []string
	if onHostNetwork(c) {
		out = append(out, hostNetworkProblem)
	}
	// Its secrets and configs are the fleet's bind mounts, which move.
	_, _, mounts, err := m.Workloads.FileMounts(ctx, c.Mounts)
	if err != nil {
		out = append(out, err.Error())
	}
	for _, mp := range mounts {
		if mp.Type == mount.TypeBind {
			out = append(out, fmt.Sprintf("it bind-mounts %s from its host, which cannot move with it: use a named volume", mp.Source))
		}
	}
	pids, err := containerPids(c.State.Pid)
	if err != nil {
		// Not knowing is no reason to refuse: CRIU will say.
		return out
	}
	foreignLimits := m.ForeignLimits == nil || m.ForeignLimits()
	return append(out, scanProcesses(pids, c.State.Pid, foreignLimits, m.Node)...)
}

// containerPids are the processes in the pid namespace of the container
// whose first process is init: all that CRIU dumps.
func containerPids(init int) ([]int, error) {
	want, err := os.Readlink(filepath.Join(procRoot, strconv.Itoa(init), "ns/pid"))
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ns, err := os.Readlink(filepath.Join(procRoot, e.Name(), "ns/pid")); err == nil && ns == want {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids, nil
}

// process is one process of the container: its pid on the host, and as
// the findings name it, its command and its pid in the container.
type process struct {
	pid   int
	comm  string
	nspid int
}

// findings gathers problems per program and reason, so that forty nginx
// workers make one line.
type findings struct {
	keys []string
	by   map[string]*finding
}

type finding struct {
	comm, reason string
	pids         []int
}

func (f *findings) add(p process, reason string) {
	key := p.comm + "\x00" + reason
	if f.by == nil {
		f.by = map[string]*finding{}
	}
	e, ok := f.by[key]
	if !ok {
		e = &finding{comm: p.comm, reason: reason}
		f.by[key] = e
		f.keys = append(f.keys, key)
	}
	if !slices.Contains(e.pids, p.nspid) {
		e.pids = append(e.pids, p.nspid)
	}
}

func (f *findings) list() []string {
	var out []string
	for _, k := range f.keys {
		e := f.by[k]
		ids := make([]string, 0, len(e.pids))
		for _, p := range e.pids[:min(len(e.pids), 5)] {
			ids = append(ids, strconv.Itoa(p))
		}
		who := "pid " + strings.Join(ids, ", ")
		if len(e.pids) > 1 {
			who = "pids " + strings.Join(ids, ", ")
			if len(e.pids) > 5 {
				who += fmt.Sprintf(" and %d more", len(e.pids)-5)
			}
		}
		out = append(out, fmt.Sprintf("%s (%s) %s", e.comm, who, e.reason))
	}
	return out
}

// scanProcesses looks at each process's descriptors, memory maps, tracer
// and user. init's network namespace is the container's, for its unix
// sockets. foreignLimits says whether this node's CRIU can read the
// resource limits of a process of another user than root.
func scanProcesses(pids []int, init int, foreignLimits bool, node string) []string {
	var f findings
	sockets := map[uint32]process{} // socket inode → a process holding it
	for _, pid := range pids {
		p := process{pid: pid, comm: readComm(pid), nspid: pid}
		st := statusFields(filepath.Join(procRoot, strconv.Itoa(pid), "status"))
		if ns := st["NSpid"]; len(ns) > 0 {
			p.nspid, _ = strconv.Atoi(ns[len(ns)-1])
		}
		scanStatus(&f, p, st, foreignLimits, node)
		scanMaps(&f, p)
		for ino, fd := range scanFds(&f, p) {
			sockets[ino] = p
			scanSocket(&f, p, fd)
		}
	}
	if len(sockets) > 0 {
		if peers, err := unixSockets(init); err == nil {
			for _, o := range outsidePeers(sockets, peers) {
				f.add(o.proc, o.reason())
			}
		}
	}
	return f.list()
}

func readComm(pid int) string {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "comm"))
	if err != nil {
		return "process"
	}
	return strings.TrimSpace(string(b))
}

// scanStatus checks who traces the process's threads and, where CRIU
// cannot read another user's limits, whose the process is.
func scanStatus(f *findings, p process, st map[string][]string, foreignLimits bool, node string) {
	dir := filepath.Join(procRoot, strconv.Itoa(p.pid))
	tasks, _ := os.ReadDir(filepath.Join(dir, "task"))
	for _, t := range tasks {
		ts := statusFields(filepath.Join(dir, "task", t.Name(), "status"))
		if tr := ts["TracerPid"]; len(tr) > 0 && tr[0] != "0" {
			f.add(p, fmt.Sprintf("is being traced (by pid %s: a debugger or strace), and CRIU cannot checkpoint a traced process: detach the tracer first", tr[0]))
			break
		}
	}
	if foreignLimits {
		return
	}
	// prlimit on a process needs CAP_SYS_RESOURCE unless all its user and
	// group IDs are the caller's (root's).
	uid, gid := st["Uid"], st["Gid"]
	for _, id := range append(slices.Clone(uid), gid...) {
		if id != "0" && len(uid) > 0 && len(gid) > 0 {
			f.add(p, fmt.Sprintf("runs as user %s (group %s), whose resource limits this node's CRIU cannot read "+
				"(root lacks CAP_SYS_RESOURCE on %s and its CRIU is a stock build): install the fleet's CRIU build there (packaging/criu)",
				uid[0], gid[0], node))
			return
		}
	}
}

// statusFields reads a /proc status file: each "Key:\tv1\tv2" line.
func statusFields(path string) map[string][]string {
	out := map[string][]string{}
	file, err := os.Open(path)
	if err != nil {
		return out
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			out[k] = strings.Fields(v)
		}
	}
	return out
}

// ioUringAdvice is what to do about io_uring.
const ioUringAdvice = "uses io_uring (anon_inode:[io_uring]), which CRIU cannot checkpoint: " +
	"turn io_uring off in the program (MariaDB: innodb_use_native_aio=0)"

// scanMaps finds io_uring rings mapped without a descriptor left open.
func scanMaps(f *findings, p process) {
	file, err := os.Open(filepath.Join(procRoot, strconv.Itoa(p.pid), "maps"))
	if err != nil {
		return
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		if strings.HasSuffix(sc.Text(), "[io_uring]") {
			f.add(p, ioUringAdvice)
			return
		}
	}
}

// criuAnonInodes are the anon_inode descriptors CRIU 4.2 checkpoints
// (criu/files.c, dump_one_file); it refuses every other kind.
var criuAnonInodes = []string{"[eventfd]", "[eventpoll]", "inotify", "[fanotify]", "[signalfd]", "[timerfd]", "[pidfd]", "bpf-map"}

// scanFds checks the process's descriptors and returns its sockets, by
// inode, with a descriptor number of each.
func scanFds(f *findings, p process) map[uint32]int {
	dir := filepath.Join(procRoot, strconv.Itoa(p.pid), "fd")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	sockets := map[uint32]int{}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if reason := fdProblem(link); reason != "" {
			f.add(p, reason)
			continue
		}
		if s, ok := strings.CutPrefix(link, "socket:["); ok {
			if ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 32); err == nil {
				sockets[uint32(ino)] = fd
			}
			continue
		}
		if strings.HasPrefix(link, "/") {
			if st, err := os.Stat(filepath.Join(dir, e.Name())); err == nil {
				if reason := deviceProblem(link, st.Mode(), st.Sys()); reason != "" {
					f.add(p, reason)
				}
			}
		}
	}
	return sockets
}

// fdProblem is what CRIU cannot do with a descriptor whose /proc link is
// link, or "".
func fdProblem(link string) string {
	kind, ok := strings.CutPrefix(link, "anon_inode:")
	switch {
	case !ok || slices.Contains(criuAnonInodes, kind):
		return ""
	case kind == "[io_uring]":
		return ioUringAdvice
	}
	return fmt.Sprintf("has a descriptor of kind %s open (%s), which CRIU cannot checkpoint: stop the program from using it before migrating",
		strings.Trim(kind, "[]"), link)
}

// deviceProblem is what CRIU cannot do with an open device, or "": it
// checkpoints the memory devices (/dev/null, /dev/zero, /dev/urandom…),
// terminals, /dev/net/tun and autofs, and no others (criu/files.c).
func deviceProblem(path string, mode os.FileMode, sys any) string {
	st, ok := sys.(*unix.Stat_t)
	if !ok || mode&os.ModeDevice == 0 {
		return ""
	}
	maj, min := unix.Major(st.Rdev), unix.Minor(st.Rdev)
	if mode&os.ModeCharDevice != 0 {
		switch {
		case maj == 1, maj == 2, maj == 3, maj == 4, maj == 5, maj >= 136 && maj <= 143:
			return ""
		case maj == 10 && (min == 200 || min == 235):
			return ""
		}
	}
	return fmt.Sprintf("has the device %s (%d:%d) open, which CRIU cannot checkpoint: have the program close it, or give the container no such device", path, maj, min)
}
