// Package hostexec runs the host's own binaries (criu, runc) from inside the
// managed plugin. A Go program cannot setns into another mount namespace, so
// the agent binary doubles as a tiny launcher: started under one of the names
// in Tools, it chroots into the bind of the host's root and, through the
// host's nsenter, runs the host's binary of that name in the host's mount
// namespace, with the same arguments and file descriptors (go-criu's swrk
// socket among them). A chroot alone is not enough: CRIU switches mount
// namespaces while it dumps, which resets its root to the plugin's.
package hostexec

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// HostRoot is where the plugin mounts the host's root filesystem.
const HostRoot = "/host/root"

// Tools are the host binaries reachable through the launcher; packaging links
// /bin/<tool> to the agent binary for each.
var Tools = []string{"criu", "runc", "nsenter"}

// searchPath is where the launcher looks for a tool on the host, in order.
var searchPath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// EnvHostMountNS names a mount namespace file of the host (that of the
// plugin's shim, which the engine's containerd started on the host) for the
// launcher to run tools in. The agent sets it for its children.
const EnvHostMountNS = "FLEET_HOST_MNTNS"

// SetHostMountNS points the launcher at the mount namespace of the agent's
// parent, the plugin's shim: it runs in the host's mount namespace (pid 1's
// may be out of reach, as in sandboxes).
func SetHostMountNS() {
	_ = os.Setenv(EnvHostMountNS, fmt.Sprintf("/proc/%d/ns/mnt", os.Getppid()))
}

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
	// The host's tools run the host's tools in turn (runc runs criu, criu
	// runs tar): give them the host's usual PATH, not the plugin's.
	env := []string{"PATH=" + strings.Join(searchPath, ":")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	p, err := find(tool)
	if err != nil {
		return err
	}
	args := append([]string{p}, argv[1:]...)
	if ns := os.Getenv(EnvHostMountNS); ns != "" && tool != "nsenter" {
		if nsenter, err := find("nsenter"); err == nil {
			p, args = nsenter, append([]string{nsenter, "--mount=" + ns, "--"}, args...)
		}
	}
	return syscall.Exec(p, args, env)
}

func find(tool string) (string, error) { return findIn("/", tool) }

// HostPath is where, seen from the agent through the bind of the host's
// root at root, the launcher finds the host's tool.
func HostPath(root, tool string) (string, error) { return findIn(root, tool) }

func findIn(root, tool string) (string, error) {
	for _, dir := range searchPath {
		p := filepath.Join(dir, tool)
		if st, err := os.Stat(filepath.Join(root, p)); err == nil && st.Mode().IsRegular() {
			return filepath.Join(root, p), nil
		}
	}
	return "", fmt.Errorf("%s is not installed on the host (looked in %v)", tool, searchPath)
}
