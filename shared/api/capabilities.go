package api

// The agent's Linux capabilities. Its CRIU (runc checkpoint, run from the
// agent) has no more than the agent, and a managed plugin gets exactly the
// capabilities its config.json lists, all or nothing: an engine whose root
// lacks one of them does not start the plugin at all ("unable to apply
// caps"). So init installs the agent with the required ones plus those
// optional ones the host's root has, and the agent reports both sets.
var (
	// RequiredCaps are what the agent cannot work without.
	RequiredCaps = []string{
		"CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_CHROOT",
		"CAP_NET_ADMIN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
		"CAP_CHOWN", "CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_MKNOD",
		"CAP_SETPCAP", "CAP_SYS_NICE", "CAP_IPC_LOCK",
	}
	// OptionalCaps widen what CRIU can checkpoint where the host's root has
	// them: CAP_SYS_RESOURCE reads another user's resource limits (prlimit),
	// CAP_IPC_OWNER another user's SysV shared memory (SHM_STAT), and
	// CAP_CHECKPOINT_RESTORE is CRIU's own (kernel 5.9 and later).
	OptionalCaps = []string{"CAP_SYS_RESOURCE", "CAP_IPC_OWNER", "CAP_CHECKPOINT_RESTORE"}
)

// Capability names of OptionalCaps, for the checks that depend on them.
const (
	CapSysResource = "CAP_SYS_RESOURCE"
	CapIPCOwner    = "CAP_IPC_OWNER"
)

// CRIUPatchRlimits is the fleet's CRIU patch that reads another user's
// resource limits from /proc/PID/limits when prlimit is refused
// (packaging/criu/rlimits-from-proc.patch).
const CRIUPatchRlimits = "rlimits-from-proc"

// CRIUPatchLockNetns is the fleet's CRIU patch that locks a restored
// container's network namespace before the engine gives it its address, so
// that no peer gets a reset before the sockets are back
// (packaging/criu/lock-netns-before-setup-ns.patch).
const CRIUPatchLockNetns = "lock-netns-before-setup-ns"

// Capabilities are the capabilities of RequiredCaps and OptionalCaps as a
// node has them.
type Capabilities struct {
	// Host are those the host's root has: what a plugin may ask for there.
	// Empty when the agent could not tell.
	Host []string `json:"host,omitempty"`
	// Agent are those the agent runs with.
	Agent []string `json:"agent,omitempty"`
}
