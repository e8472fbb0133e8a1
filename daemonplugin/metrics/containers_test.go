package metrics

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestCgroupPaths(t *testing.T) {
	v2, v1 := CgroupPaths([]byte("0::/fsim-h1/abc\n"))
	assert.Check(t, is.Equal(v2, "/fsim-h1/abc"))
	assert.Check(t, is.Equal(v1, ""))
	v2, v1 = CgroupPaths([]byte("12:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n"))
	assert.Check(t, is.Equal(v2, ""))
	assert.Check(t, is.Equal(v1, "/docker/abc"))
}

func TestContainerCores(t *testing.T) {
	proc, cg := t.TempDir(), t.TempDir()
	assert.NilError(t, os.MkdirAll(filepath.Join(proc, "42"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(proc, "42", "cgroup"), []byte("0::/ctr\n"), 0o644))
	assert.NilError(t, os.MkdirAll(filepath.Join(cg, "ctr"), 0o755))
	stat := func(us string) {
		assert.NilError(t, os.WriteFile(filepath.Join(cg, "ctr", "cpu.stat"), []byte("usage_usec "+us+"\nuser_usec 1\n"), 0o644))
	}
	c := &ContainerCPU{Proc: proc, Cgroup: cg, Pids: func() map[string]int { return map[string]int{"abc": 42} }}
	t0 := time.Now()
	stat("1000000")
	c.sample(t0)
	assert.Check(t, is.Equal(c.Cores("abc"), 0.0), "one sample says nothing")
	stat("2500000")
	c.sample(t0.Add(time.Second))
	assert.Check(t, is.Equal(c.Cores("abc"), 1.5))
	// A cgroup v1 host's cpuacct.
	assert.NilError(t, os.WriteFile(filepath.Join(proc, "42", "cgroup"), []byte("2:cpuacct:/v1ctr\n0::/v1ctr\n"), 0o644))
	assert.NilError(t, os.MkdirAll(filepath.Join(cg, "cpuacct", "v1ctr"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(cg, "cpuacct", "v1ctr", "cpuacct.usage"), []byte("5000000000\n"), 0o644))
	u, ok := c.usage(42)
	assert.Check(t, ok)
	assert.Check(t, is.Equal(u, 5*time.Second))
	c.Pids = func() map[string]int { return nil }
	c.sample(t0.Add(2 * time.Second))
	assert.Check(t, is.Equal(c.Cores("abc"), 0.0), "gone, forgotten")
}
