package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	mobyclient "github.com/moby/moby/client"
)

// guardBench measures what the guard adds to each engine request: the same
// requests against one engine's socket, in alternating rounds with the
// guard off and on, and prints the latency percentiles of each and their
// difference (target: p99 under 2 ms more).
func guardBench(n int) {
	host := src
	engine, err := mobyclient.New(mobyclient.WithHost("unix:///run/fsim/" + host + "/docker.sock"))
	if err != nil {
		fail("engine client: %v", err)
	}
	ctx := context.Background()
	_, _ = dockerErr(host, "rm", "-f", "gbench")
	mustDocker(host, "run", "-d", "--name", "gbench", "--memory", "64m", image)
	defer func() { _, _ = dockerErr(host, "rm", "-f", "gbench") }()
	defer func() { _, _ = dockerErr(client, "fleet", "init", "--guard=false") }()

	// A request the guard only passes (a list), and one it decides (an
	// update it reads the body of and looks its container up for).
	list := func() error {
		_, err := engine.ContainerList(ctx, mobyclient.ContainerListOptions{})
		return err
	}
	update := func() error {
		_, err := engine.ContainerUpdate(ctx, "gbench", mobyclient.ContainerUpdateOptions{Resources: &container.Resources{Memory: 64 << 20}})
		return err
	}
	kinds := []struct {
		name string
		call func() error
	}{{"list (passed)", list}, {"update (decided)", update}}
	lat := map[string]map[bool][]float64{}
	for _, k := range kinds {
		lat[k.name] = map[bool][]float64{}
	}
	const rounds = 2
	for r := 0; r < rounds; r++ {
		for _, on := range []bool{false, true} {
			mustDocker(client, "fleet", "init", fmt.Sprintf("--guard=%t", on))
			for _, k := range kinds {
				for i := 0; i < n/rounds; i++ {
					start := time.Now()
					if err := k.call(); err != nil {
						fail("%s (guard %t): %v", k.name, on, err)
					}
					lat[k.name][on] = append(lat[k.name][on], float64(time.Since(start).Microseconds())/1000)
				}
			}
		}
	}
	fmt.Printf("guard: %d requests of each kind to %s's engine, guard off and on in alternating rounds\n", n, host)
	fmt.Printf("%-18s %-22s %-22s %s\n", "REQUEST", "OFF p50/p99 (ms)", "ON p50/p99 (ms)", "ADDED p50/p99 (ms, target p99 < 2)")
	for _, k := range kinds {
		off, on := lat[k.name][false], lat[k.name][true]
		fmt.Printf("%-18s %-22s %-22s %.2f / %.2f\n", k.name,
			fmt.Sprintf("%.2f / %.2f", pct(off, 50), pct(off, 99)), fmt.Sprintf("%.2f / %.2f", pct(on, 50), pct(on, 99)),
			pct(on, 50)-pct(off, 50), pct(on, 99)-pct(off, 99))
	}
	agentRoundTrip(host, n)
	fmt.Println()
}

// agentRoundTrip times what the engine asks the agent for each request
// (AuthZReq then AuthZRes) at the agent's socket, without the engine: the
// agent's part of the added latency.
func agentRoundTrip(host string, n int) {
	id := strings.TrimSpace(mustDockerOut(host, "plugin", "inspect", "-f", "{{.Id}}", "fleet-agent:latest"))
	sock := "/run/docker/plugins/" + id + "/fleet.sock"
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	body := []byte(`{"RequestMethod":"GET","RequestURI":"/v1.41/containers/json","RequestHeaders":{"User-Agent":"Docker-Client/20.10.24"}}`)
	var lat []float64
	for i := 0; i < n; i++ {
		start := time.Now()
		for _, path := range []string{"/AuthZPlugin.AuthZReq", "/AuthZPlugin.AuthZRes"} {
			resp, err := c.Post("http://plugin"+path, "application/json", bytes.NewReader(body))
			if err != nil {
				fail("agent socket %s: %v", sock, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		lat = append(lat, float64(time.Since(start).Microseconds())/1000)
	}
	fmt.Printf("%-18s %-22s %-22s %.2f / %.2f  (the agent's part: both calls at its socket)\n", "agent round trip", "", "", pct(lat, 50), pct(lat, 99))
}

// pct is the p-th percentile of xs.
func pct(xs []float64, p int) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, len(s)*p/100)]
}
