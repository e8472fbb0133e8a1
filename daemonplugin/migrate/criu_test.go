package migrate

import (
	"errors"
	"os"
	"path/filepath"
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
	r := criuReason(root, err)
	assert.Check(t, is.Contains(r, "multipath TCP (MPTCP)"))
	assert.Check(t, is.Contains(r, "GODEBUG=multipathtcp=0"))

	assert.NilError(t, os.WriteFile(filepath.Join(root, "run/x/criu-dump.log"), []byte(
		"(0.1) Error (criu/util.c:1): rlimit: Can't setup RLIMIT_NOFILE\n(0.2) Error (criu/files.c:9): Can't dump ghost file /tmp/x\n"), 0o644))
	assert.Check(t, is.Equal(criuReason(root, err), "CRIU: Can't dump ghost file /tmp/x (log: /run/x/criu-dump.log)"))

	assert.Check(t, is.Equal(criuReason(root, errors.New("plain")), "plain"))
}

func TestEditCRIUConfig(t *testing.T) {
	root := t.TempDir()
	assert.NilError(t, editCRIUConfig(root, criuOptions, nil))
	b, err := os.ReadFile(filepath.Join(root, "etc/criu/runc.conf"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(b), "tcp-established\nskip-in-flight\n"))

	assert.NilError(t, os.WriteFile(filepath.Join(root, "etc/criu/runc.conf"), []byte("log-file /x\ntcp-established"), 0o644))
	assert.NilError(t, editCRIUConfig(root, criuOptions, nil))
	b, _ = os.ReadFile(filepath.Join(root, "etc/criu/runc.conf"))
	assert.Check(t, is.Equal(string(b), "log-file /x\ntcp-established\nskip-in-flight\n"))
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
		assert.Check(t, is.Equal(string(b), "tcp-established\nskip-in-flight\nimages-dir /dev/shm/x\n"))
		return nil
	})
	assert.NilError(t, err)
	b, err := os.ReadFile(conf)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(b), "tcp-established\nskip-in-flight\n"))
}
