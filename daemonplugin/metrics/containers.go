package metrics

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ContainerCPU measures the cores each container uses, from its cgroup's
// CPU time (cgroup v2 cpu.stat, or v1 cpuacct.usage), over the last few
// samples: what rebalance weighs nodes by.
type ContainerCPU struct {
	// Proc is the host's procfs; Cgroup the host's cgroup mount.
	Proc, Cgroup string
	// Pids lists the running containers: ID → the pid of its first process.
	Pids func() map[string]int

	mu      sync.Mutex
	samples map[string][]cpuSample
}

type cpuSample struct {
	at    time.Time
	usage time.Duration
}

// window is how many samples a rate spans.
const window = 4

// Run samples every interval until stop closes.
func (c *ContainerCPU) Run(stop <-chan struct{}, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		c.sample(time.Now())
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func (c *ContainerCPU) sample(now time.Time) {
	pids := c.Pids()
	got := map[string]time.Duration{}
	for id, pid := range pids {
		if u, ok := c.usage(pid); ok {
			got[id] = u
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.samples == nil {
		c.samples = map[string][]cpuSample{}
	}
	for id := range c.samples {
		if _, ok := got[id]; !ok {
			delete(c.samples, id)
		}
	}
	for id, u := range got {
		s := append(c.samples[id], cpuSample{at: now, usage: u})
		if len(s) > window {
			s = s[len(s)-window:]
		}
		c.samples[id] = s
	}
}

// Cores is the cores container id used over the last samples (0 before
// two of them).
func (c *ContainerCPU) Cores(id string) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.samples[id]
	if len(s) < 2 {
		return 0
	}
	first, last := s[0], s[len(s)-1]
	span := last.at.Sub(first.at)
	if span <= 0 || last.usage < first.usage {
		return 0
	}
	return float64(last.usage-first.usage) / float64(span)
}

// usage is the CPU time of pid's cgroup.
func (c *ContainerCPU) usage(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(filepath.Join(c.Proc, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return 0, false
	}
	v2, v1 := CgroupPaths(b)
	if v1 != "" {
		if st, err := os.ReadFile(filepath.Join(c.Cgroup, "cpuacct", v1, "cpuacct.usage")); err == nil {
			ns, err := strconv.ParseInt(strings.TrimSpace(string(st)), 10, 64)
			return time.Duration(ns), err == nil
		}
	}
	if v2 != "" {
		// A unified mount, or a hybrid one's beside the v1 controllers.
		for _, dir := range []string{c.Cgroup, filepath.Join(c.Cgroup, "unified")} {
			if st, err := os.ReadFile(filepath.Join(dir, v2, "cpu.stat")); err == nil {
				return UsageV2(st)
			}
		}
	}
	return 0, false
}

// CgroupPaths reads /proc/PID/cgroup: the unified (v2) path, and the v1
// cpuacct one.
func CgroupPaths(b []byte) (v2, v1 string) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = parts[2]
		case strings.Contains(","+parts[1]+",", ",cpuacct,"):
			v1 = parts[2]
		}
	}
	return v2, v1
}

// UsageV2 reads usage_usec from a cgroup v2 cpu.stat.
func UsageV2(b []byte) (time.Duration, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "usage_usec "); ok {
			us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return time.Duration(us) * time.Microsecond, err == nil
		}
	}
	return 0, false
}
