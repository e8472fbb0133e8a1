package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// transportBench times describe and a one-replica create through the relay
// and directly, alternating the two so that both see the same machine, and
// prints the medians side by side.
func transportBench(runs int) {
	restore := rememberedTransport()
	defer func() { _, _ = dockerErr(client, "fleet", restore, "describe") }()
	relay, direct := []string{"fleet", "--direct=false"}, []string{"fleet", "--direct"}
	_, _ = dockerErr(client, "fleet", "rm", "tbench")

	var dr, dd, cr, cd []float64
	for i := 0; i < runs; i++ {
		for _, way := range [][]string{relay, direct} {
			t := timed(append(way, "describe")...)
			if way[1] == "--direct" {
				dd = append(dd, t)
			} else {
				dr = append(dr, t)
			}
		}
	}
	for i := 0; i < (runs+1)/2; i++ {
		for _, way := range [][]string{relay, direct} {
			t := timed(append(way, "create", "--name", "tbench", "--image", image, "--cpus", "1", "--memory", "32m")...)
			mustDocker(client, "fleet", "rm", "tbench")
			if way[1] == "--direct" {
				cd = append(cd, t)
			} else {
				cr = append(cr, t)
			}
		}
	}
	fmt.Printf("%-22s %-22s %-22s %s\n", "OPERATION (median)", "THROUGH THE RELAY", "DIRECT", "RATIO")
	for _, m := range []struct {
		name          string
		relay, direct []float64
	}{{"describe", dr, dd}, {"create, 1 replica", cr, cd}} {
		r, d := median(m.relay), median(m.direct)
		fmt.Printf("%-22s %-22s %-22s %.2fx\n", m.name, fmt.Sprintf("%.3fs (n=%d)", r, len(m.relay)),
			fmt.Sprintf("%.3fs (n=%d)", d, len(m.direct)), r/d)
	}
	fmt.Println()
}

// timed runs a docker fleet command against the manager and returns its
// wall time, as a user sees it.
func timed(args ...string) float64 {
	t0 := time.Now()
	mustDocker(client, args...)
	return time.Since(t0).Seconds()
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// rememberedTransport is the flag that puts back the transport the user
// had chosen for the manager's context before the bench.
func rememberedTransport() string {
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".docker")
	}
	b, _ := os.ReadFile(filepath.Join(dir, "fleet", "contexts", client+".json"))
	if strings.Contains(string(b), `"direct"`) {
		return "--direct"
	}
	return "--direct=false"
}
