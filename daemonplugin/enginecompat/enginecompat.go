// Package enginecompat holds what the fleet knows about Docker engine
// versions: which of them set a restored container's network up themselves,
// and which need it held for them.
package enginecompat

import (
	"strconv"
	"strings"
)

// NeedsNetnsHolder says whether an engine of this version (as it reports
// it, "28.5.2+dfsg4") fails to restore a checkpointed container that has a
// network namespace of its own, so that a migration must restore it into
// the namespace of a holder container (`--network container:…`).
//
// Docker 26.0 and 28.0 onwards set a container's network up after creating
// its task, from the task's pid (daemon/start_linux.go,
// initializeCreatedTask). A task created from a checkpoint has no process
// until CRIU restores it at start, so its pid is 0 and every
// `docker start --checkpoint` fails with "bind-mount /proc/0/ns/net → …: no
// such file or directory" (containerd/containerd#12141). A container that
// joins another's namespace skips that step. 26.1 to 27.x set the network
// up from an OCI prestart hook, which runc runs inside the restore, as 20.10
// does.
func NeedsNetnsHolder(version string) bool {
	major, minor, ok := majorMinor(version)
	return ok && ((major == 26 && minor == 0) || major >= 28)
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
