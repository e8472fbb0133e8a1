package metrics

import (
	"os"
	"sync"
	"time"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
)

// Sampler keeps the CPU usage of the last interval so that a request is
// answered at once instead of waiting out a measurement.
type Sampler struct {
	Proc     string // procfs mount, "/proc" in the agent
	Interval time.Duration

	mu    sync.Mutex
	last  api.CPU
	ready chan struct{}
	once  sync.Once
}

// NewSampler returns a sampler over the procfs at proc.
func NewSampler(proc string, interval time.Duration) *Sampler {
	return &Sampler{Proc: proc, Interval: interval, ready: make(chan struct{})}
}

// Run samples until stop is closed.
func (s *Sampler) Run(stop <-chan struct{}) {
	prev, _ := s.readStat()
	// The first figure comes quickly; later ones over the full interval.
	wait := s.Interval / 5
	for {
		select {
		case <-stop:
			return
		case <-time.After(wait):
		}
		wait = s.Interval
		cur, err := s.readStat()
		if err != nil {
			continue
		}
		if prev != nil {
			s.mu.Lock()
			s.last = Usage(prev, cur)
			s.mu.Unlock()
			s.once.Do(func() { close(s.ready) })
		}
		prev = cur
	}
}

// CPU returns the last interval's usage, waiting for the first one.
func (s *Sampler) CPU(timeout time.Duration) api.CPU {
	select {
	case <-s.ready:
	case <-time.After(timeout):
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func (s *Sampler) readStat() ([]CPUTimes, error) {
	f, err := os.Open(s.Proc + "/stat")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseStat(f)
}

// Host reads memory, network and uptime from procfs.
func Host(proc string) (mem api.Memory, ifaces []api.Interface, uptime float64, err error) {
	read := func(name string, parse func(f *os.File) error) {
		if err != nil {
			return
		}
		var f *os.File
		if f, err = os.Open(proc + "/" + name); err != nil {
			return
		}
		defer f.Close()
		err = parse(f)
	}
	read("meminfo", func(f *os.File) (e error) { mem, e = ParseMeminfo(f); return })
	read("net/dev", func(f *os.File) (e error) { ifaces, e = ParseNetDev(f); return })
	read("uptime", func(f *os.File) (e error) { uptime, e = ParseUptime(f); return })
	return mem, ifaces, uptime, err
}

// Cores lists the node's online cores, as /proc/stat numbers them.
func Cores(proc string) (cpuset.Set, error) {
	f, err := os.Open(proc + "/stat")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	times, err := ParseStat(f)
	if err != nil {
		return nil, err
	}
	var ids []int
	for _, t := range times {
		if t.ID >= 0 {
			ids = append(ids, t.ID)
		}
	}
	return cpuset.Of(ids...), nil
}
