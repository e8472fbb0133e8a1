// Package hostexec runs the host's own binaries (criu, runc) from inside the
// managed plugin. A Go program cannot setns into another mount namespace, so
// the agent binary doubles as a tiny launcher: started under one of the names
// in Tools, it chroots into the bind of the host's root and execs the host's
// binary of that name with the same arguments and file descriptors (go-criu's
// swrk socket among them).
package hostexec

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// HostRoot is where the plugin mounts the host's root filesystem.
const HostRoot = "/host/root"

// Tools are the host binaries reachable through the launcher; packaging links
// /bin/<tool> to the agent binary for each.
var Tools = []string{"criu"}

// searchPath is where the launcher looks for a tool on the host, in order.
var searchPath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// IsLauncher reports whether argv0 names one of the Tools.
func IsLauncher(argv0 string) bool {
	base := filepath.Base(argv0)
	for _, t := range Tools {
		if base == t {
			return true
		}
	}
	return false
}

// Exec replaces the process with the host's binary named like argv[0].
// It only returns on failure.
func Exec(argv []string) error {
	tool := filepath.Base(argv[0])
	if err := syscall.Chroot(HostRoot); err != nil {
		return fmt.Errorf("chroot %s: %w", HostRoot, err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	for _, dir := range searchPath {
		p := filepath.Join(dir, tool)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return syscall.Exec(p, append([]string{p}, argv[1:]...), os.Environ())
		}
	}
	return fmt.Errorf("%s is not installed on the host (looked in %v)", tool, searchPath)
}
