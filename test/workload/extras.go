package main

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Extras (EXTRAS=shm,lock,unix,iouring,ghost) make the workload hold what
// servers hold, for the migration tests; GET / reports each one's state
// under "extras" ("ok" when it is as it was made):
//
//   - shm: a SysV shared memory segment (1 MiB) of the workload's user,
//     filled from the birth token, as PostgreSQL keeps one;
//   - lock: an fcntl write lock on a file, as databases hold;
//   - unix: a unix socket listening in the container's own filesystem,
//     with one connection to it kept open;
//   - posixshm: POSIX shared memory (a 1 MiB file in /dev/shm, mapped);
//   - iouring: an io_uring instance (MariaDB's native AIO), which CRIU
//     cannot checkpoint;
//   - ghost: a 2 MiB file deleted while held open, more than CRIU carries:
//     its checkpoint fails.
type extras struct {
	dir     string
	birth   string
	shm     []byte
	shmID   int
	shmSum  [32]byte
	pshm    []byte
	pshmSum [32]byte
	lock    *os.File
	probe   *os.File // another open file description of the lock file
	unixMu  sync.Mutex
	unixC   net.Conn
	iouring int
	ghost   *os.File
}

func startExtras(list, dir, birth string) *extras {
	e := &extras{dir: dir, birth: birth, shmID: -1, iouring: -1}
	for _, x := range strings.Split(list, ",") {
		var err error
		switch x {
		case "":
		case "shm":
			err = e.startShm()
		case "lock":
			err = e.startLock()
		case "unix":
			err = e.startUnix()
		case "posixshm":
			err = e.startPosixShm()
		case "iouring":
			err = e.startIOUring()
		case "ghost":
			err = e.startGhost()
		default:
			err = fmt.Errorf("unknown")
		}
		if err != nil {
			log.Fatalf("EXTRAS %s: %v", x, err)
		}
	}
	return e
}

func (e *extras) startShm() error {
	id, err := unix.SysvShmGet(unix.IPC_PRIVATE, 1<<20, unix.IPC_CREAT|0o600)
	if err != nil {
		return err
	}
	b, err := unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		return err
	}
	seed := sha256.Sum256([]byte(e.birth))
	for i := range b {
		b[i] = seed[i%len(seed)] ^ byte(i>>8)
	}
	e.shm, e.shmID, e.shmSum = b, id, sha256.Sum256(b)
	return nil
}

func (e *extras) startPosixShm() error {
	f, err := os.OpenFile("/dev/shm/workload", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(1 << 20); err != nil {
		return err
	}
	b, err := unix.Mmap(int(f.Fd()), 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	seed := sha256.Sum256([]byte("posix " + e.birth))
	for i := range b {
		b[i] = seed[i%len(seed)] ^ byte(i>>9)
	}
	e.pshm, e.pshmSum = b, sha256.Sum256(b)
	return nil
}

func (e *extras) startLock() error {
	f, err := os.OpenFile(filepath.Join(e.dir, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
		return err
	}
	// The probe stays open: closing any descriptor of a file drops the
	// process's fcntl locks on it.
	probe, err := os.OpenFile(f.Name(), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	e.lock, e.probe = f, probe
	return nil
}

func (e *extras) startUnix() error {
	path := filepath.Join(e.dir, "workload.sock")
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintln(c, "echo "+sc.Text())
				}
			}()
		}
	}()
	e.unixC, err = net.Dial("unix", path)
	return err
}

func (e *extras) startIOUring() error {
	var params [120]byte // struct io_uring_params
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 4, uintptr(unsafe.Pointer(&params)), 0)
	if errno != 0 {
		return errno
	}
	e.iouring = int(fd)
	return nil
}

func (e *extras) startGhost() error {
	path := filepath.Join(e.dir, "ghost")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(make([]byte, 2<<20)); err != nil {
		return err
	}
	e.ghost = f
	return os.Remove(path)
}

// state reports each extra: "ok", or what is wrong with it.
func (e *extras) state() map[string]string {
	out := map[string]string{}
	if e.shm != nil {
		var ds unix.SysvShmDesc
		switch _, err := unix.SysvShmCtl(e.shmID, unix.IPC_STAT, &ds); {
		case err != nil:
			out["shm"] = "segment gone: " + err.Error()
		case sha256.Sum256(e.shm) != e.shmSum:
			out["shm"] = "content changed"
		default:
			out["shm"] = fmt.Sprintf("ok (owner %d)", ds.Perm.Uid)
		}
	}
	if e.pshm != nil {
		out["posixshm"] = "ok"
		if sha256.Sum256(e.pshm) != e.pshmSum {
			out["posixshm"] = "content changed"
		}
	}
	if e.lock != nil {
		out["lock"] = e.lockState()
	}
	if e.unixC != nil {
		e.unixMu.Lock()
		defer e.unixMu.Unlock()
		out["unix"] = "ok"
		if _, err := fmt.Fprintln(e.unixC, "ping"); err != nil {
			out["unix"] = err.Error()
		} else if line, err := bufio.NewReader(e.unixC).ReadString('\n'); err != nil || line != "echo ping\n" {
			out["unix"] = fmt.Sprintf("answer %q (%v)", line, err)
		}
	}
	if e.iouring >= 0 {
		out["iouring"] = "open"
	}
	if e.ghost != nil {
		out["ghost"] = "open"
	}
	return out
}

// lockState asks, from another open file description of the lock file,
// who holds a lock on it: this process, if the lock is as it was made.
func (e *extras) lockState() string {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(e.probe.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return err.Error()
	}
	switch {
	case lk.Type == unix.F_UNLCK:
		return "not held"
	case int(lk.Pid) != os.Getpid():
		return fmt.Sprintf("held by pid %d, not %d", lk.Pid, os.Getpid())
	}
	return "ok"
}
