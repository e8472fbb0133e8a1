package migrate

// System calls that x/sys/unix lacks, or that need a fallback on older
// kernels, for the extractor.

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// chmodAt sets the mode of leaf in dir without following a symlink.
// fchmodat2 (Linux 6.6) does it; older kernels go through chmodViaProc.
func chmodAt(dir int, leaf string, mode uint32) error {
	err := unix.Fchmodat(dir, leaf, mode, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.EOPNOTSUPP) { // no fchmodat2, or leaf is a symlink
		return chmodViaProc(dir, leaf, mode)
	}
	return err
}

// chmodViaProc sets the mode of leaf in dir through an O_PATH descriptor
// of leaf itself: its /proc/self/fd link names that inode, and nothing in
// between can be swapped for a symlink.
func chmodViaProc(dir int, leaf string, mode uint32) error {
	fd, err := unix.Openat(dir, leaf, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return fmt.Errorf("%w: %s is a symlink", errUnsafe, leaf)
	}
	return unix.Chmod(fmt.Sprintf("/proc/self/fd/%d", fd), mode)
}

// futimens sets the times of the open fd: utimensat with a NULL path, as
// the C library does it (x/sys/unix has no futimens).
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
