//go:build e2e

package e2e

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// userWorkload is the test workload as many server images are: its
// process runs as user 1000 (USER 1000:1000), not root.
const userWorkload = "fleet-workload-user:latest"

// userImage makes userWorkload on the hosts, once per workload binary,
// from the binary the simulator's image has (SIM_WORKLOAD), with no
// registry: imported on one host, saved and loaded on the others, so that
// all have the same image.
func userImage(t *testing.T, hosts ...string) {
	t.Helper()
	bin := os.Getenv("SIM_WORKLOAD")
	assert.Assert(t, bin != "", "SIM_WORKLOAD names the workload binary (make e2e sets it)")
	b, err := os.ReadFile(bin)
	assert.NilError(t, err)
	sum := sha256.Sum256(b)
	want := hex.EncodeToString(sum[:8])
	var missing []string
	for _, h := range hosts {
		have := docker(t, h, "image", "inspect", "-f", `{{index .Config.Labels "com.docker.fleet.test.user-rootfs"}}`, userWorkload)
		if strings.TrimSpace(have.Stdout) != want {
			missing = append(missing, h)
		}
	}
	if len(missing) == 0 {
		return
	}
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs.tar")
	f, err := os.Create(rootfs)
	assert.NilError(t, err)
	tw := tar.NewWriter(f)
	passwd := "root:x:0:0:root:/:/workload\napp:x:1000:1000:app:/var/lib/workload:/workload\n"
	for _, e := range []struct {
		hdr  tar.Header
		body []byte
	}{
		{tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}, nil},
		{tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644}, []byte(passwd)},
		{tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777}, nil},
		{tar.Header{Name: "var/", Typeflag: tar.TypeDir, Mode: 0o755}, nil},
		{tar.Header{Name: "var/lib/", Typeflag: tar.TypeDir, Mode: 0o755}, nil},
		{tar.Header{Name: "var/lib/workload/", Typeflag: tar.TypeDir, Mode: 0o755, Uid: 1000, Gid: 1000}, nil},
		{tar.Header{Name: "workload", Typeflag: tar.TypeReg, Mode: 0o755}, b},
	} {
		e.hdr.Size = int64(len(e.body))
		assert.NilError(t, tw.WriteHeader(&e.hdr))
		_, err := tw.Write(e.body)
		assert.NilError(t, err)
	}
	assert.NilError(t, tw.Close())
	assert.NilError(t, f.Close())
	mustDocker(t, missing[0], "import",
		"--change", `ENTRYPOINT ["/workload"]`,
		"--change", "ENV GODEBUG=multipathtcp=0",
		"--change", "EXPOSE 8080",
		"--change", "USER 1000:1000",
		"--change", "LABEL com.docker.fleet.test.user-rootfs="+want,
		rootfs, userWorkload)
	if len(missing) > 1 {
		saved := filepath.Join(dir, "image.tar")
		mustDocker(t, missing[0], "save", "-o", saved, userWorkload)
		for _, h := range missing[1:] {
			mustDocker(t, h, "load", "-q", "-i", saved)
		}
	}
}

// rootLacks reports whether this machine's root lacks the capability of
// number bit (its bounding set), as root on the test machines lacks
// CAP_SYS_RESOURCE.
func rootLacks(t *testing.T, bit uint) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	assert.NilError(t, err)
	m := regexp.MustCompile(`CapBnd:\s+([0-9a-f]+)`).FindSubmatch(b)
	assert.Assert(t, m != nil)
	bnd, err := strconv.ParseUint(string(m[1]), 16, 64)
	assert.NilError(t, err)
	return bnd&(1<<bit) == 0
}

const capSysResource = 24

// The agent asks each engine for what its root has: on this machine (root
// without CAP_SYS_RESOURCE) it is installed and running without it, with
// CAP_IPC_OWNER and CAP_CHECKPOINT_RESTORE, and says what such a host
// cannot do.
func TestAgentCapabilitiesFitTheHost(t *testing.T) {
	r := initFleet(t)
	lacks := rootLacks(t, capSysResource)
	for _, n := range describeFleet(t).Nodes {
		assert.Assert(t, n.Info != nil, "node %s: %s", n.Hostname, n.Error)
		caps := n.Info.Capabilities
		assert.Check(t, slices.Contains(caps.Agent, "CAP_IPC_OWNER"), "node %s: %v", n.Hostname, caps.Agent)
		assert.Check(t, slices.Contains(caps.Agent, "CAP_CHECKPOINT_RESTORE"), "node %s: %v", n.Hostname, caps.Agent)
		assert.Check(t, is.DeepEqual(caps.Agent, caps.Host), "node %s: the agent has what root has", n.Hostname)
		assert.Check(t, is.Equal(slices.Contains(caps.Host, "CAP_SYS_RESOURCE"), !lacks), "node %s", n.Hostname)
		installed := mustDocker(t, n.Hostname, "plugin", "inspect", "fleet-agent:latest", "--format", "{{json .Config.Linux.Capabilities}}")
		assert.Check(t, is.Equal(strings.Contains(installed, "CAP_SYS_RESOURCE"), !lacks), "node %s plugin: %s", n.Hostname, installed)
		assert.Check(t, slices.Contains(n.Info.CRIU.Patches, "rlimits-from-proc"), "node %s: the fleet's CRIU build", n.Hostname)
		assert.Check(t, slices.Contains(n.Info.CRIU.Patches, "lock-netns-before-setup-ns"), "node %s: the fleet's CRIU build", n.Hostname)
		assert.Check(t, n.Info.Migration.Ready, "node %s: %v", n.Hostname, n.Info.Migration.Problems)
		limits := strings.Join(n.Info.Migration.Limits, "\n")
		if lacks {
			assert.Check(t, is.Contains(limits, "root lacks CAP_SYS_RESOURCE: containers whose processes are not root migrate only with the fleet's CRIU build"), "node %s", n.Hostname)
		} else {
			assert.Check(t, is.Equal(limits, ""), "node %s", n.Hostname)
		}
	}
	if lacks {
		out := mustFleet(t, "describe", "h2")
		assert.Check(t, is.Contains(out, "limited: root lacks CAP_SYS_RESOURCE"))
		assert.Check(t, is.Contains(out, "root lacks CAP_SYS_RESOURCE"), out)
		assert.Check(t, is.Regexp(`Live migration works with these limits:\n  h1(, h\d+)*: root lacks CAP_SYS_RESOURCE`, r.Stdout))
	}
}

// A server's process is rarely root: one of user 1000 holding SysV shared
// memory (its own, not root's), POSIX shared memory, an fcntl lock and a
// unix socket in its filesystem migrates live with all of it, its TCP
// connection and state.
func TestMigrateNonRootWithSharedMemoryLockAndSocket(t *testing.T) {
	initFleet(t)
	removeServices(t, "asuser")
	userImage(t, "h2", "h3")
	mustFleet(t, "create", "--name", "asuser", "--image", userWorkload, "--node", "h2", "--memory", "128m",
		"-e", "BALLAST_MB=16", "-e", "EXTRAS=shm,posixshm,lock,unix")
	ip := fleetIP(t, "asuser.1")
	st0 := ask(t, "h1", ip)
	assert.Check(t, is.Equal(st0.UID, 1000))
	assert.Check(t, is.DeepEqual(st0.Extras, map[string]string{"shm": "ok (owner 1000)", "posixshm": "ok", "lock": "ok", "unix": "ok"}))
	assert.Check(t, is.Equal(fleetCmd(t, "migrate", "--check", "asuser.1", "--to", "h3").Code, 0))
	stop := poller(t, "h1", ip)
	time.Sleep(2 * time.Second)

	r := fleetCmd(t, "migrate", "asuser.1", "--to", "h3")
	assert.Assert(t, r.Code == 0, r.String())
	t.Log(strings.TrimSpace(r.Stdout))
	time.Sleep(time.Second)
	poll := stop()
	t.Logf("poller: %+v", poll)
	assert.Check(t, is.Equal(poll.Dials, 1), "the poller's TCP connection did not survive: %+v", poll)
	assert.Check(t, !poll.WentBack)
	assert.Check(t, poll.Errors == 0 && poll.Last > st0.Counter, "%+v", poll)

	c, ok := containerOn(t, "asuser.1")
	assert.Assert(t, ok)
	assert.Check(t, is.Equal(c.Host, "h3"))
	st := ask(t, "h1", ip)
	assert.Check(t, is.Equal(st.UID, 1000))
	assert.Check(t, is.Equal(st.Birth, st0.Birth))
	assert.Check(t, st.Counter >= poll.Last)
	assert.Check(t, st.BallastOK != nil && *st.BallastOK)
	assert.Check(t, is.DeepEqual(st.Extras, st0.Extras), "shared memory, lock and socket after the move")
	// The process on the destination is still user 1000's.
	uid := mustDocker(t, "h3", "exec", "asuser.1", "/workload", "get", "http://127.0.0.1:8080/")
	var self workloadState
	assert.NilError(t, json.Unmarshal([]byte(uid), &self))
	assert.Check(t, is.Equal(self.UID, 1000))
}

// shmLeft lists the migration directories in the hosts' tmpfs.
func shmLeft(t *testing.T) []string {
	t.Helper()
	left, err := filepath.Glob("/dev/shm/fleet-migration-*")
	assert.NilError(t, err)
	return left
}

// io_uring (MariaDB's native AIO) is refused before anything is frozen,
// with the reason and what to change; --check says the same and changes
// nothing.
func TestMigrateRefusesIOUringBeforeTheFreeze(t *testing.T) {
	initFleet(t)
	removeServices(t, "uring")
	mustFleet(t, "create", "--name", "uring", "--image", workload, "--node", "h2", "-e", "BALLAST_MB=4", "-e", "EXTRAS=iouring")
	ip := fleetIP(t, "uring.1")
	st0 := ask(t, "h1", ip)
	assert.Check(t, is.Equal(st0.Extras["iouring"], "open"))
	before, _ := containerOn(t, "uring.1")

	check := fleetCmd(t, "migrate", "--check", "uring.1")
	t.Log(check.Stderr)
	assert.Check(t, is.Equal(check.Code, 1), check.String())
	assert.Check(t, is.Contains(check.Stderr, "uring.1 on h2 cannot migrate: workload (pid 1) uses io_uring"))
	assert.Check(t, is.Contains(check.Stderr, "innodb_use_native_aio=0"))
	assert.Check(t, is.Equal(check.Stdout, ""))

	r := fleetCmd(t, "migrate", "uring.1", "--to", "h3")
	t.Log(r.Stderr)
	assert.Check(t, is.Equal(r.Code, 1), r.String())
	assert.Check(t, is.Contains(r.Stderr, "uring.1 cannot migrate, it keeps running on h2 untouched: workload (pid 1) uses io_uring"))
	assert.Check(t, is.Contains(r.Stderr, "innodb_use_native_aio=0"))
	assert.Check(t, !regexp.MustCompile(`(?m)^checkpoint: `).MatchString(r.Stderr), "it was never frozen")
	assert.Check(t, !regexp.MustCompile(`(?m)^prepare: `).MatchString(r.Stderr), "the destination was never asked")

	after, ok := containerOn(t, "uring.1")
	assert.Assert(t, ok)
	assert.Check(t, is.Equal(after.Host, "h2"))
	assert.Check(t, is.Equal(after.State.Pid, before.State.Pid))
	assert.Check(t, is.Equal(after.State.StartedAt, before.State.StartedAt))
	noTwinLeft(t, "h3", "uring.1")
	assertRunsOnSourceWithState(t, "uring.1", "h2", ip, st0)

	// --format json gives the verdict; a container that can go says so.
	check = fleetCmd(t, "migrate", "--check", "uring.1", "--format", "json")
	assert.Check(t, is.Equal(check.Code, 1))
	var v struct {
		OK       bool     `json:"ok"`
		Node     string   `json:"node"`
		Problems []string `json:"problems"`
	}
	assert.NilError(t, json.Unmarshal([]byte(check.Stdout), &v), check.Stdout)
	assert.Check(t, !v.OK && v.Node == "h2" && len(v.Problems) == 1, "%+v", v)
	removeServices(t, "fine")
	mustFleet(t, "create", "--name", "fine", "--image", workload, "--node", "h2", "-e", "BALLAST_MB=1")
	ok2 := fleetCmd(t, "migrate", "--check", "fine.1", "--to", "h3")
	assert.Check(t, is.Equal(ok2.Code, 0), ok2.String())
	assert.Check(t, is.Contains(ok2.Stdout, "fine.1 on h2 can migrate to h3"))
}

// A checkpoint that CRIU fails (a deleted file held open, larger than CRIU
// carries) leaves no migration directory in tmpfs, only CRIU's log, kept
// where the error says.
func TestFailedCheckpointLeavesOnlyItsLog(t *testing.T) {
	initFleet(t)
	removeServices(t, "ghost")
	mustFleet(t, "create", "--name", "ghost", "--image", workload, "--node", "h2", "-e", "BALLAST_MB=4", "-e", "EXTRAS=ghost")
	ip := fleetIP(t, "ghost.1")
	st0 := ask(t, "h1", ip)
	before := shmLeft(t)

	r := fleetCmd(t, "migrate", "ghost.1", "--to", "h3")
	t.Log(r.Stderr)
	assert.Check(t, is.Equal(r.Code, 1), r.String())
	assert.Check(t, is.Contains(r.Stderr, "checkpoint of ghost.1 failed, it keeps running on h2: a process holds a deleted file open"))
	m := regexp.MustCompile(`log: (/var/log/docker-fleet/criu-dump-\S+-h2-ghost\.1\.log)\)`).FindStringSubmatch(r.Stderr)
	assert.Assert(t, m != nil, "the error names the kept log: %s", r.Stderr)
	log, err := os.ReadFile(m[1])
	assert.NilError(t, err, "the named log is there")
	assert.Check(t, is.Contains(string(log), "Can't dump ghost file"))
	assert.Check(t, is.DeepEqual(shmLeft(t), before), "nothing of it is left in /dev/shm")
	kept, err := filepath.Glob("/var/log/docker-fleet/criu-dump-*.log")
	assert.NilError(t, err)
	assert.Check(t, len(kept) <= 5, "%d dump logs kept", len(kept))
	assertRunsOnSourceWithState(t, "ghost.1", "h2", ip, st0)
	noTwinLeft(t, "h3", "ghost.1")
}
