package migrate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/errdefs"
	units "github.com/docker/go-units"
	"golang.org/x/sys/unix"

	"github.com/docker-fleet/fleet/daemonplugin/workloads"
)

// The destination reserves, at prepare, the tmpfs room the CRIU images
// will take: a node short of memory refuses before the source freezes
// anything, and the pages are allocated outside the frozen window. That
// allocation is what a tmpfs write costs most where memory is backed
// lazily (a VM whose free memory goes back to its host: here, writing 1 GB
// into fresh tmpfs pages takes 3.4 s, into pages already had 0.45 s). The
// reserve is a file in the images directory; the extractor renames it to
// the first large image and writes into its pages (reserveFor).

// reserveName is the reserve's file in a destination's images directory.
const reserveName = ".fleet-reserve"

// reserveMin is the smallest image written into the reserve: the pages
// image, not CRIU's small ones.
const reserveMin = 1 << 20

// reserveTTL bounds how long a reserve waits for its stream (the source
// may stream the image first): a source that prepared and went away does
// not hold the memory longer.
var reserveTTL = 5 * time.Minute

// reserve takes n bytes of tmpfs for migration id's images.
func (m *Migrator) reserve(id string, n int64) error {
	dir := m.host(m.workDir(id, "-in"))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	file := filepath.Join(dir, reserveName)
	if err := fallocate(file, n); err != nil {
		_ = os.Remove(file)
		_ = os.Remove(dir)
		if errors.Is(err, unix.ENOSPC) {
			return workloads.Refuse(errdefs.ErrResourceExhausted, "node %s cannot reserve %s in %s for the checkpoint",
				m.Node, units.BytesSize(float64(n)), shmDir)
		}
		return fmt.Errorf("reserving room for the checkpoint: %w", err)
	}

	m.expMu.Lock()
	defer m.expMu.Unlock()
	if m.reserves == nil {
		m.reserves = map[string]*time.Timer{}
	}
	if t := m.reserves[id]; t != nil {
		t.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(reserveTTL, func() {
		m.expMu.Lock()
		defer m.expMu.Unlock()
		if m.reserves[id] != t {
			return // taken, or made anew, while this waited for the lock
		}
		delete(m.reserves, id)
		_ = os.Remove(file)
		_ = os.Remove(dir) // only if the receive never made anything in it
	})
	m.reserves[id] = t
	return nil
}

func fallocate(file string, n int64) error {
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = unix.Fallocate(int(f.Fd()), 0, 0, n)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// takeReserve keeps migration id's reserve from expiring: its receive uses
// it, and removes the directory at its end. A receive that will not write
// the images to tmpfs (the engine's checkpoint) gives it back at once.
func (m *Migrator) takeReserve(id string, use bool) {
	m.expMu.Lock()
	defer m.expMu.Unlock()
	if t := m.reserves[id]; t != nil {
		t.Stop()
		delete(m.reserves, id)
	}
	if !use {
		_ = os.Remove(filepath.Join(m.host(m.workDir(id, "-in")), reserveName))
	}
}

// reserveFor opens, as leaf in dir, the section's reserve if it has one
// and the file is large enough to want it; fd < 0 otherwise. The reserve's
// pages are zeros, as the holes the extractor skips must be, and the
// extractor truncates the file to its size, freeing the rest.
func (x *extractor) reserveFor(r *sectionRoot, n streamName, dir int, leaf string, size int64) (int, error) {
	if n.section+"/" != x.reserveSection || x.reserveSection == "" || len(n.comps) != 1 || size < reserveMin {
		return -1, nil
	}
	x.reserveSection = "" // one file takes it
	if err := unix.Renameat2(r.fd, reserveName, dir, leaf, unix.RENAME_NOREPLACE); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return -1, nil // expired, or never had
		}
		return -1, err
	}
	// The agent made it a regular file, and the stream cannot name it
	// (checkReserved): still, nothing but a regular file is written into.
	fd, err := unix.Openat(dir, leaf, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		_ = unix.Close(fd)
		return -1, fmt.Errorf("%w: the reserve is not a regular file", errUnsafe)
	}
	return fd, nil
}

// checkReserved refuses a stream entry named as the reserve in the
// section that has one: only the agent makes that file.
func (x *extractor) checkReserved(n streamName) error {
	if x.reserveSection != "" && n.section+"/" == x.reserveSection && len(n.comps) == 1 && n.comps[0] == reserveName {
		return fmt.Errorf("%w: %s is the destination's own", errUnsafe, reserveName)
	}
	return nil
}
