package workloads

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// SetNetSysctls gives the network namespace of process pid the net.*
// sysctls among sysctls, through procSys (the host's /proc/sys): runc
// applies a container's sysctls when it makes the container's namespace,
// not when CRIU restores into a fresh one, so a restored container would
// run with the node's defaults. Other sysctls (kernel.*) belong to
// namespaces CRIU restores itself.
func SetNetSysctls(procSys string, pid int, sysctls map[string]string) error {
	var keys []string
	for _, k := range slices.Sorted(maps.Keys(sysctls)) {
		if strings.HasPrefix(k, "net.") {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread, in the container's namespace, ends
		// with this goroutine instead of serving others.
		runtime.LockOSThread()
		errc <- setNetSysctls(procSys, pid, keys, sysctls)
	}()
	return <-errc
}

func setNetSysctls(procSys string, pid int, keys []string, sysctls map[string]string) error {
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return err
	}
	defer ns.Close()
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("entering the network namespace of %d: %w", pid, err)
	}
	base := filepath.Join(procSys, "net")
	for _, k := range keys {
		p := filepath.Join(procSys, strings.ReplaceAll(k, ".", "/"))
		if !strings.HasPrefix(p, base+"/") || len(sysctls[k]) > 256 {
			return fmt.Errorf("sysctl %q: not a network parameter", k)
		}
		if err := os.WriteFile(p, []byte(sysctls[k]), 0); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", k, sysctls[k], err)
		}
	}
	return nil
}
