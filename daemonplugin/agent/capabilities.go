package agent

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/docker-fleet/fleet/daemonplugin/criucheck"
	"github.com/docker-fleet/fleet/daemonplugin/hostexec"
	"github.com/docker-fleet/fleet/shared/api"
)

// capNumbers are the bits of the capabilities the agent asks for.
var capNumbers = map[string]int{
	"CAP_CHOWN": unix.CAP_CHOWN, "CAP_DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE, "CAP_DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH,
	"CAP_FOWNER": unix.CAP_FOWNER, "CAP_KILL": unix.CAP_KILL, "CAP_SETGID": unix.CAP_SETGID, "CAP_SETUID": unix.CAP_SETUID,
	"CAP_SETPCAP": unix.CAP_SETPCAP, "CAP_NET_ADMIN": unix.CAP_NET_ADMIN, "CAP_IPC_LOCK": unix.CAP_IPC_LOCK,
	"CAP_IPC_OWNER": unix.CAP_IPC_OWNER, "CAP_SYS_CHROOT": unix.CAP_SYS_CHROOT, "CAP_SYS_PTRACE": unix.CAP_SYS_PTRACE,
	"CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN, "CAP_SYS_NICE": unix.CAP_SYS_NICE, "CAP_SYS_RESOURCE": unix.CAP_SYS_RESOURCE,
	"CAP_MKNOD": unix.CAP_MKNOD, "CAP_CHECKPOINT_RESTORE": unix.CAP_CHECKPOINT_RESTORE,
}

// readCapabilities finds which of the capabilities the agent asks for the
// host's root has, and which the agent runs with. The agent's parent is
// the plugin's shim, which the engine's containerd started on the host with
// root's capabilities: its permitted set is what the engine can give a
// plugin (no more: runc cannot grant what it does not hold).
func readCapabilities(proc string) api.Capabilities {
	var out api.Capabilities
	if host, ok := capSet(filepath.Join(proc, strconv.Itoa(os.Getppid()), "status"), "CapPrm"); ok {
		out.Host = capNames(host)
	}
	if own, ok := capSet(filepath.Join(proc, "self/status"), "CapEff"); ok {
		out.Agent = capNames(own)
	}
	return out
}

// capSet reads a capability mask (CapPrm, CapEff…) from a status file.
func capSet(path, field string) (uint64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// capNames are the capabilities the agent asks for that mask holds, in the
// order of api.RequiredCaps then api.OptionalCaps.
func capNames(mask uint64) []string {
	out := []string{}
	for _, name := range append(slices.Clone(api.RequiredCaps), api.OptionalCaps...) {
		if n, ok := capNumbers[name]; ok && mask&(1<<n) != 0 {
			out = append(out, name)
		}
	}
	return out
}

// criuPatches are the fleet's patches the host's CRIU was built with.
func criuPatches() []string {
	p, err := hostexec.HostPath(hostexec.HostRoot, "criu")
	if err != nil {
		return nil
	}
	return criucheck.Patches(p)
}

// readsForeignLimits says whether CRIU, run by an agent with these
// capabilities, can read the resource limits of another user's process:
// with CAP_SYS_RESOURCE, or as the fleet's build (packaging/criu).
func readsForeignLimits(caps api.Capabilities, criu api.CRIUInfo) bool {
	return len(caps.Agent) == 0 || slices.Contains(caps.Agent, api.CapSysResource) ||
		slices.Contains(criu.Patches, api.CRIUPatchRlimits)
}

// CapabilityLimits says what migration cannot do on a node where the agent
// runs with these capabilities and this CRIU, and why.
func CapabilityLimits(caps api.Capabilities, criu api.CRIUInfo) []string {
	if len(caps.Agent) == 0 {
		return nil // the agent could not tell
	}
	// lacks names who lacks a capability: the host's root, or only the
	// agent (installed before the host had it, or by hand).
	lacks := func(c string) string {
		if slices.Contains(caps.Host, c) {
			return "the agent runs without " + c + " (`docker fleet init` installs it with it)"
		}
		return "root lacks " + c
	}
	var out []string
	if !slices.Contains(caps.Agent, api.CapSysResource) {
		if slices.Contains(criu.Patches, api.CRIUPatchRlimits) {
			out = append(out, lacks(api.CapSysResource)+": containers whose processes are not root migrate only with the fleet's CRIU build "+
				"(patched rlimits, packaging/criu), which this host has")
		} else {
			out = append(out, lacks(api.CapSysResource)+": containers whose processes are not root cannot be checkpointed with this host's CRIU; "+
				"install the fleet's CRIU build (patched rlimits, packaging/criu)")
		}
	}
	if !slices.Contains(caps.Agent, api.CapIPCOwner) {
		out = append(out, lacks(api.CapIPCOwner)+": SysV shared memory of another user than root (PostgreSQL's) cannot be checkpointed")
	}
	if criu.Version != "" && !slices.Contains(criu.Patches, api.CRIUPatchLockNetns) {
		out = append(out, "this host's CRIU gives a restored container its address before its connections are back: "+
			"a client's packet in that moment gets a reset (a dropped connection, a refused one); "+
			"install the fleet's CRIU build (locked restore, packaging/criu)")
	}
	return out
}
