package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
)

// The fast path (SPEC section 9): the source checkpoints with runc straight
// into a tmpfs directory instead of through the engine, which round-trips
// the images through containerd's content store; the destination keeps the
// images in tmpfs too, gives the engine only descriptors.json, and points
// CRIU at the images with images-dir for that one restore.

// runcLauncher runs the host's runc (see hostexec).
const runcLauncher = "/bin/runc"

// shmDir is a tmpfs of the host for the images, as the host sees it.
const shmDir = "/dev/shm"

// runcTarget is how to reach a container's runc state on the host.
type runcTarget struct {
	Root string // runc --root
}

// bundle finds a running container's bundle directory (host path): its
// shim, the parent of its first process, runs there.
func bundle(pid int) (string, error) {
	if pid == 0 {
		return "", fmt.Errorf("not running")
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	// Fields after the command's closing parenthesis: state, ppid, …
	rest := stat[bytes.LastIndexByte(stat, ')')+1:]
	fields := strings.Fields(string(rest))
	if len(fields) < 2 {
		return "", fmt.Errorf("bad /proc stat")
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return "", err
	}
	return os.Readlink(fmt.Sprintf("/proc/%d/cwd", ppid))
}

// findRunc reads the runc root from the container's bundle, whose
// options.json names it.
func (m *Migrator) findRunc(c container.InspectResponse) (*runcTarget, error) {
	bundle, err := bundle(c.State.Pid)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(m.host(filepath.Join(bundle, "options.json")))
	if err != nil {
		return nil, err
	}
	var opts struct {
		Root string `json:"Root"`
	}
	if err := json.Unmarshal(b, &opts); err != nil {
		return nil, err
	}
	if opts.Root == "" {
		return nil, fmt.Errorf("no runc root in %s", filepath.Join(bundle, "options.json"))
	}
	// The shim keeps each containerd namespace's containers apart: the
	// bundle sits in …/<namespace>/<id>, the runc state in <root>/<namespace>.
	root := filepath.Join(opts.Root, filepath.Base(filepath.Dir(bundle)))
	if _, err := os.Stat(m.host(filepath.Join(root, c.ID))); err != nil {
		return nil, fmt.Errorf("no runc state for the container under %s", root)
	}
	return &runcTarget{Root: root}, nil
}

// runc runs the host's runc on the target's state.
func (t *runcTarget) run(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, runcLauncher, append([]string{"--root", t.Root}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("runc %s: %s (%w)", args[0], strings.TrimSpace(string(out)), err)
	}
	return nil
}

// runcCheckpoint dumps the frozen container into imgDir (a host path) and
// leaves it there, frozen: the migration's end decides whether it resumes
// or goes.
func (m *Migrator) runcCheckpoint(ctx context.Context, t *runcTarget, id, imgDir string) error {
	work := imgDir + "-work"
	for _, d := range []string{imgDir, work} {
		if err := os.MkdirAll(m.host(d), 0o700); err != nil {
			return err
		}
	}
	cmd := exec.CommandContext(ctx, runcLauncher, "--root", t.Root, "checkpoint", "--leave-running",
		"--image-path", imgDir, "--work-path", work, "--tcp-established", id)
	out, err := cmd.CombinedOutput()
	if err != nil {
		// CRIU writes its log into the work path given it.
		return &CRIUError{Op: "dump", Log: filepath.Join(work, "dump.log"),
			Err: fmt.Errorf("%s (%w)", strings.TrimSpace(string(out)), err)}
	}
	return nil
}

// lockChain holds the agent's own network lock, apart from CRIU's chain:
// CRIU locks and unlocks its own during a dump, and keeps its lock method
// in the images for the restore, so the agent's lock must leave it alone.
const lockChain = "FLEET-LOCK"

// lockRules drop every packet into and out of a network namespace but
// CRIU's own (marked SOCCR_MARK, as in CRIU's lock).
const lockRules = `*filter
:` + lockChain + ` - [0:0]
-I INPUT -j ` + lockChain + `
-I OUTPUT -j ` + lockChain + `
-A ` + lockChain + ` -m mark --mark 0xC114 -j ACCEPT
-A ` + lockChain + ` -j DROP
COMMIT
`

// unlockRules take lockRules away, all at once or (absent) not at all.
const unlockRules = `*filter
-D INPUT -j ` + lockChain + `
-D OUTPUT -j ` + lockChain + `
-F ` + lockChain + `
-X ` + lockChain + `
COMMIT
`

// lockNetwork locks the network namespace of process pid: peers' packets
// are dropped (and sent again by them) rather than answered while the
// namespace's sockets are not what its peers know. The agent locks a
// migrating container itself, from before its checkpoint until it resumes
// here or goes, which CRIU's own lock (lifted when a dump ends) would not
// cover; and a network holder from its start until the sockets are
// restored in it, which CRIU does not do for a namespace it did not make.
func lockNetwork(ctx context.Context, pid int) error {
	if out, err := iptablesRestore(ctx, pid, lockRules); err != nil {
		return fmt.Errorf("iptables-restore: %s (%w)", out, err)
	}
	return nil
}

// unlockNetwork takes lockNetwork's rules away. A restored container may
// have brought them along in its checkpoint (CRIU restores the iptables it
// dumped, on hosts whose iptables are the legacy ones). No lock there is
// no error: what fails is the namespace's iptables themselves.
func unlockNetwork(ctx context.Context, pid int) error {
	if _, err := iptablesRestore(ctx, pid, unlockRules); err == nil {
		return nil
	}
	// Nothing to take away, or iptables failing: a check tells which.
	if out, err := iptablesRestore(ctx, pid, "*filter\nCOMMIT\n"); err != nil {
		return fmt.Errorf("iptables-restore: %s (%w)", out, err)
	}
	return nil
}

func iptablesRestore(ctx context.Context, pid int, rules string) (string, error) {
	cmd := exec.CommandContext(ctx, nsenterLauncher, fmt.Sprintf("--net=/proc/%d/ns/net", pid), "--", "iptables-restore", "--noflush")
	cmd.Stdin = strings.NewReader(rules)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// unlockCRIU takes away the rules with which CRIU locks a container's
// network during a dump. CRIU removes them itself when a dump ends, but not
// always when one fails half-way; left there, they cut the container off.
func unlockCRIU(ctx context.Context, pid int) {
	ns := fmt.Sprintf("--net=/proc/%d/ns/net", pid)
	iptables := func(args ...string) error {
		return exec.CommandContext(ctx, nsenterLauncher, append([]string{ns, "--", "iptables"}, args...)...).Run()
	}
	for _, chain := range []string{"INPUT", "OUTPUT"} {
		for i := 0; i < 8 && iptables("-D", chain, "-j", "CRIU") == nil; i++ {
		}
	}
	_ = iptables("-F", "CRIU")
	_ = iptables("-X", "CRIU")
}

// nsenterLauncher runs the host's nsenter (see hostexec).
const nsenterLauncher = "/bin/nsenter"
