// Package enginecompat holds what the fleet knows about Docker engine
// versions: which of them can restore a checkpointed container, and why
// not.
package enginecompat

import (
	"fmt"
	"strconv"
	"strings"
)

// RestoreProblem says why an engine of this version (as it reports it,
// "28.5.2+dfsg4") cannot restore a checkpointed container that has a network
// namespace of its own, or "" when it can.
//
// Docker 26.0 and 28.0 onwards set a container's network up after creating
// its task, from the task's pid (daemon/start_linux.go,
// initializeCreatedTask). A task created from a checkpoint has no process
// until CRIU restores it at start, so its pid is 0 and every
// `docker start --checkpoint` fails with "bind-mount /proc/0/ns/net → …: no
// such file or directory" (containerd/containerd#12141). 26.1 to 27.x set it
// up from an OCI prestart hook, which runc runs inside the restore, as 20.10
// does.
func RestoreProblem(version string) string {
	major, minor, ok := majorMinor(version)
	if !ok {
		return ""
	}
	if (major == 26 && minor == 0) || major >= 28 {
		return fmt.Sprintf("Docker %s cannot restore a checkpointed container: it sets the container's network up from the "+
			"pid of a task that CRIU has not restored yet (bind-mount /proc/0/ns/net, containerd/containerd#12141); "+
			"run Docker 20.10 to 25.0, or 26.1 to 27.x, on the nodes containers migrate from and to", version)
	}
	return ""
}

// majorMinor reads "28.5.2+dfsg4" as 28, 5.
func majorMinor(version string) (int, int, bool) {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(leadingDigits(parts[1]))
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return major, minor, true
}

func leadingDigits(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}
