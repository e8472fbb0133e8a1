package sockprobe

import (
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestListeningAndCandidates(t *testing.T) {
	const procNetUnix = `Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 21001 /run/containerd/containerd.sock
0000000000000000: 00000002 00000000 00010000 0001 01 21002 /run/fsim/h2/docker.sock
0000000000000000: 00000003 00000000 00000000 0001 03 21003 /run/fsim/h2/docker.sock
0000000000000000: 00000002 00000000 00010000 0001 01 21004 @/containerd-shim/abc.sock
0000000000000000: 00000002 00000000 00010000 0002 01 21005 /run/dgram.sock
0000000000000000: 00000002 00000000 00010000 0001 01 21006 /run/docker/plugins/x/fleet.sock
0000000000000000: 00000002 00000000 00010000 0001 01 21007 /var/run/other dir/api.sock
0000000000000000: 00000002 00000000 00010000 0001 01 21008
`
	paths, err := Listening(strings.NewReader(procNetUnix))
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(paths, []string{
		"/run/containerd/containerd.sock", "/run/fsim/h2/docker.sock", "/run/docker/plugins/x/fleet.sock", "/var/run/other dir/api.sock",
	}))
	assert.Check(t, is.DeepEqual(Candidates(paths), []string{
		"/run/fsim/h2/docker.sock", "/var/run/other dir/api.sock", "/run/containerd/containerd.sock", "/run/docker/plugins/x/fleet.sock",
	}))
}
