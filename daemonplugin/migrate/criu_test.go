package migrate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

const dumpLog = `(00.056073) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted
(00.069390) Error (criu/sk-inet.c:137): inet: Unsupported proto 262 for socket 2ee93
(00.069414) Error (criu/cr-dump.c:1545): Dump files (pid: 26428) failed with -1
`

func TestCRIUReason(t *testing.T) {
	root := t.TempDir()
	assert.NilError(t, os.MkdirAll(filepath.Join(root, "run/x"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(root, "run/x/criu-dump.log"), []byte(dumpLog), 0o644))
	err := errors.New("Cannot checkpoint container mp: runc did not terminate successfully: exit status 1: criu failed: type NOTIFY errno 0 path= /run/x/criu-dump.log: unknown")
	e := engineCRIUError("dump", err)
	log := e.Log
	assert.Check(t, is.Equal(log, "/run/x/criu-dump.log"), "parsed once, from the engine's message")
	r := criuReason(root, e, log)
	assert.Check(t, is.Contains(r, "multipath TCP (MPTCP)"))
	assert.Check(t, is.Contains(r, "GODEBUG=multipathtcp=0"))
	assert.Check(t, is.Contains(r, "CRIU: inet: Unsupported proto 262"), "CRIU's line follows as detail")

	assert.NilError(t, os.WriteFile(filepath.Join(root, "run/x/criu-dump.log"), []byte(
		"(0.1) Error (criu/util.c:1): rlimit: Can't setup RLIMIT_NOFILE\n(0.2) Error (criu/files.c:9): Can't open /x\n"), 0o644))
	assert.Check(t, is.Equal(criuReason(root, e, "/kept.log"), "CRIU: Can't open /x (log: /kept.log)"))

	assert.NilError(t, os.WriteFile(filepath.Join(root, "run/x/criu-dump.log"), []byte(
		"(0.2) Error (criu/files-reg.c:9): Can't dump ghost file /tmp/x of 2097152 size, increase limit\n"), 0o644))
	r = criuReason(root, e, log)
	assert.Check(t, is.Contains(r, "deleted file"))
	assert.Check(t, is.Contains(r, "(CRIU: Can't dump ghost file /tmp/x of 2097152 size, increase limit; log: /run/x/criu-dump.log)"))

	plain := engineCRIUError("restore", errors.New("plain"))
	assert.Check(t, is.Equal(plain.Log, ""))
	assert.Check(t, is.Equal(criuReason(root, plain, ""), "plain"))
}

// A failed dump leaves its log, and no more than keptLogs of them.
func TestFailureKeepsBoundedLogs(t *testing.T) {
	root := t.TempDir()
	m := &Migrator{Node: "h2", HostRoot: root}
	work := "/dev/shm/fleet-migration-x-work"
	assert.NilError(t, os.MkdirAll(filepath.Join(root, work), 0o700))
	assert.NilError(t, os.WriteFile(filepath.Join(root, work, "dump.log"), []byte(dumpLog), 0o600))
	var reasons []string
	for i := 0; i < keptLogs+3; i++ {
		err := fmt.Errorf("checkpoint: %w", &CRIUError{Op: "dump", Log: filepath.Join(work, "dump.log"), Err: errors.New("runc: criu failed")})
		var e *CRIUError
		assert.Assert(t, errors.As(m.explain(err, "web.1"), &e))
		assert.Check(t, is.Equal(e.Log, filepath.Join(work, "dump.log")))
		assert.Check(t, strings.HasPrefix(e.Kept, keptLogDir+"/criu-dump-"), e.Kept)
		assert.Check(t, is.Equal(e.Error(), e.Reason), "the reason is what users read")
		reasons = append(reasons, e.Reason)
	}
	kept, _ := filepath.Glob(filepath.Join(root, keptLogDir, "criu-dump-*.log"))
	assert.Check(t, is.Len(kept, keptLogs))
	last := reasons[len(reasons)-1]
	assert.Check(t, is.Contains(last, "log: "+keptLogDir+"/criu-dump-"))
	named := last[strings.Index(last, "log: ")+5 : len(last)-1]
	assert.Check(t, strings.HasSuffix(named, "-h2-web.1.log"), named)
	b, rerr := os.ReadFile(filepath.Join(root, named))
	assert.NilError(t, rerr, "the log the error names is there")
	assert.Check(t, is.Equal(string(b), dumpLog))
	first := reasons[0]
	_, serr := os.Stat(filepath.Join(root, first[strings.Index(first, "log: ")+5:len(first)-1]))
	assert.Check(t, os.IsNotExist(serr), "the oldest logs go")
}

func TestEditCRIUConfig(t *testing.T) {
	root := t.TempDir()
	assert.NilError(t, editCRIUConfig(root, criuOptions, nil))
	b, err := os.ReadFile(filepath.Join(root, "etc/criu/runc.conf"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(b), "tcp-established\nskip-in-flight\nfile-locks\n"))

	assert.NilError(t, os.WriteFile(filepath.Join(root, "etc/criu/runc.conf"), []byte("log-file /x\ntcp-established"), 0o644))
	assert.NilError(t, editCRIUConfig(root, criuOptions, nil))
	b, _ = os.ReadFile(filepath.Join(root, "etc/criu/runc.conf"))
	assert.Check(t, is.Equal(string(b), "log-file /x\ntcp-established\nskip-in-flight\nfile-locks\n"))
	assert.NilError(t, editCRIUConfig(root, criuOptions, nil))
	b2, _ := os.ReadFile(filepath.Join(root, "etc/criu/runc.conf"))
	assert.Check(t, is.Equal(string(b2), string(b)), "a second call changes nothing")
}

func TestWithCRIULockAddsExtraForTheCallOnly(t *testing.T) {
	root := t.TempDir()
	assert.NilError(t, os.MkdirAll(filepath.Join(root, "run"), 0o755))
	conf := filepath.Join(root, "etc/criu/runc.conf")
	err := withCRIULock(root, []string{"images-dir /dev/shm/x"}, func() error {
		b, err := os.ReadFile(conf)
		assert.NilError(t, err)
		assert.Check(t, is.Equal(string(b), "tcp-established\nskip-in-flight\nfile-locks\nimages-dir /dev/shm/x\n"))
		return nil
	})
	assert.NilError(t, err)
	b, err := os.ReadFile(conf)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(b), "tcp-established\nskip-in-flight\nfile-locks\n"))
}
