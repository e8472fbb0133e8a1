// Package metrics reads the node's figures from procfs: per-core CPU usage,
// memory, per-interface network counters and uptime.
package metrics

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/docker-fleet/fleet/shared/api"
)

// CPUTimes are the jiffies of one CPU line of /proc/stat.
type CPUTimes struct {
	ID         int // -1 for the aggregate "cpu" line
	Busy, Idle uint64
}

// ParseStat reads the cpu lines of /proc/stat.
func ParseStat(r io.Reader) ([]CPUTimes, error) {
	var out []CPUTimes
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || !strings.HasPrefix(fields[0], "cpu") {
			continue
		}
		t := CPUTimes{ID: -1}
		if id := strings.TrimPrefix(fields[0], "cpu"); id != "" {
			n, err := strconv.Atoi(id)
			if err != nil {
				return nil, fmt.Errorf("/proc/stat: bad cpu line %q", fields[0])
			}
			t.ID = n
		}
		for i, f := range fields[1:] {
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("/proc/stat: %s: %w", fields[0], err)
			}
			switch i {
			case 3, 4: // idle, iowait
				t.Idle += v
			case 8, 9: // guest, guest_nice are already counted in user, nice
			default:
				t.Busy += v
			}
		}
		out = append(out, t)
	}
	return out, sc.Err()
}

// Usage turns two /proc/stat readings into percentages.
func Usage(prev, cur []CPUTimes) api.CPU {
	before := make(map[int]CPUTimes, len(prev))
	for _, p := range prev {
		before[p.ID] = p
	}
	var u api.CPU
	for _, c := range cur {
		p, ok := before[c.ID]
		if !ok {
			continue
		}
		pct := percent(c.Busy-p.Busy, (c.Busy+c.Idle)-(p.Busy+p.Idle))
		if c.ID < 0 {
			u.Percent = pct
			continue
		}
		u.Cores = append(u.Cores, api.Core{ID: c.ID, Percent: pct})
	}
	return u
}

func percent(busy, total uint64) float64 {
	if total == 0 || busy > total {
		return 0
	}
	return float64(busy) * 100 / float64(total)
}

// ParseMeminfo reads /proc/meminfo.
func ParseMeminfo(r io.Reader) (api.Memory, error) {
	var m api.Memory
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "MemTotal:":
			m.Total = v * 1024
		case "MemAvailable:":
			m.Available = v * 1024
		}
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if m.Total == 0 {
		return m, fmt.Errorf("/proc/meminfo: no MemTotal")
	}
	m.Used = m.Total - m.Available
	return m, nil
}

// ParseNetDev reads /proc/net/dev (the reader's network namespace).
func ParseNetDev(r io.Reader) ([]api.Interface, error) {
	var out []api.Interface
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue // the two header lines
		}
		f := strings.Fields(rest)
		if len(f) < 16 {
			return nil, fmt.Errorf("/proc/net/dev: short line for %s", strings.TrimSpace(name))
		}
		var v [16]uint64
		for i := range v {
			n, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("/proc/net/dev: %s: %w", strings.TrimSpace(name), err)
			}
			v[i] = n
		}
		out = append(out, api.Interface{
			Name:    strings.TrimSpace(name),
			RxBytes: v[0], RxPackets: v[1],
			TxBytes: v[8], TxPackets: v[9],
		})
	}
	return out, sc.Err()
}

// ParseUptime reads /proc/uptime.
func ParseUptime(r io.Reader) (float64, error) {
	var up, idle float64
	if _, err := fmt.Fscan(r, &up, &idle); err != nil {
		return 0, fmt.Errorf("/proc/uptime: %w", err)
	}
	return up, nil
}
