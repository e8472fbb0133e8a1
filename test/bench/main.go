// Command bench measures live migration of the stateful workload under HTTP
// polling on the simulator, docker fleet against the docker-native path
// (docker checkpoint create, copy the directory, docker start --checkpoint on
// the other host) in the same run, and prints both and their ratio.
//
// With -only transport (or alongside the migrations) it measures what the
// way to the agents costs: describe and a one-replica create through the
// manager's relay against direct connections to the agent ports.
//
// It needs the simulator up and a fleet of h1..h3 (make bench does both).
// With -only guard (or alongside) it measures what the guard (init --guard)
// adds to each request of an engine.
//
// Usage: bench [-sizes 64,256,1024] [-only migrate|transport|guard] [-runs N] [-requests N]
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker-fleet/fleet/shared/api"
)

const (
	image  = "fleet-workload:latest"
	src    = "h2"
	dst    = "h3"
	client = "h1"
)

type pollSummary struct {
	Polls    int     `json:"polls"`
	Errors   int     `json:"errors"`
	MaxGapMs float64 `json:"maxGapMs"`
	Dials    int     `json:"dials"`
	WentBack bool    `json:"counterWentBack"`
}

type measure struct {
	gap, total float64
	poll       pollSummary
	res        *api.MigrateResult // docker fleet's own figures (--format json)
}

func main() {
	sizes := flag.String("sizes", "64,256,1024", "ballast sizes in MB")
	only := flag.String("only", "", "run only the migrate, transport, guard or scale measures (scale is never run by default: it needs 12 hosts)")
	runs := flag.Int("runs", 10, "runs of each transport measure")
	requests := flag.Int("requests", 2000, "engine requests of each kind the guard measure makes")
	nodes := flag.String("nodes", "3,6,12", "fleet sizes the scale measure grows through (-only scale)")
	replicas := flag.Int("replicas", 100, "replicas the scale measure creates at each size")
	sink := flag.String("wire-sink", "", "(internal) receive the raw TCP measure at this address")
	send := flag.String("wire-send", "", "(internal) send the raw TCP measure to this address")
	flag.Parse()
	switch {
	case *sink != "":
		wireSink(*sink)
		return
	case *send != "":
		wireSend(*send)
		return
	}
	if *only == "scale" {
		scaleBench(parseSizes(*nodes), *replicas)
		return
	}
	if *only == "" || *only == "guard" {
		guardBench(*requests)
	}
	if *only == "" || *only == "transport" {
		transportBench(*runs)
	}
	if *only == "transport" || *only == "guard" {
		return
	}
	wire := wireRate()
	fmt.Printf("wire: plain TCP from %s to %s moves %.0f MB/s (1 GiB, same run)\n\n", src, dst, wire/1e6)
	fmt.Printf("%-7s %-16s %-16s %-12s %-38s %s\n", "SIZE", "FLEET gap/total", "NATIVE gap/total", "RATIO",
		"FLEET PHASES (s from freeze)", "TRANSFER")
	fmt.Printf("%-7s %-16s %-16s %-12s %-38s %s\n", "", "", "", "gap,total",
		"dump  lastbyte  restored  reachable", "MB/s, share of wire")
	var first, last *measure
	var firstMB, lastMB int
	for _, s := range strings.Split(*sizes, ",") {
		mb, err := strconv.Atoi(s)
		check(err)
		ours := fleetRun(mb)
		native := nativeRun(mb)
		if ours.res.Phases == nil {
			fail("docker fleet migrate printed no phases")
		}
		p := *ours.res.Phases
		rate := float64(ours.res.Bytes) / (p.LastByte - p.Dump)
		fmt.Printf("%-7s %-16s %-16s %-12s %-38s %.0f, %.0f%%\n", s+"MB",
			fmt.Sprintf("%.2fs/%.2fs", ours.gap, ours.total),
			fmt.Sprintf("%.2fs/%.2fs", native.gap, native.total),
			fmt.Sprintf("%.2fx,%.2fx", ours.gap/native.gap, ours.total/native.total),
			fmt.Sprintf("%4.2f  %8.2f  %8.2f  %9.2f", p.Dump, p.LastByte, p.Restored, p.Reachable),
			rate/1e6, 100*rate/wire)
		fmt.Fprintf(os.Stderr, "  fleet poller %+v (restore on %s %.2fs)\n  native poller %+v\n", ours.poll, dst, p.Restore, native.poll)
		if first == nil {
			first, firstMB = &ours, mb
		}
		last, lastMB = &ours, mb
	}
	if lastMB > firstMB {
		slope := (last.res.Downtime - first.res.Downtime) / float64(last.res.Bytes-first.res.Bytes) * 1e9
		fmt.Printf("\ndowntime grows %.2fs a GB (%dMB to %dMB); the wire moves a GB in %.2fs\n", slope, firstMB, lastMB, 1e9/wire)
	}
}

func fleetRun(mb int) measure {
	name := fmt.Sprintf("bench%d", mb)
	_, _ = dockerErr(client, "fleet", "rm", name)
	mustDocker(client, "fleet", "create", "--name", name, "--image", image, "--node", src, "--cpus", "1",
		"--memory", fmt.Sprintf("%dm", mb+256), "-e", fmt.Sprintf("BALLAST_MB=%d", mb))
	defer func() { _, _ = dockerErr(client, "fleet", "rm", name) }()
	ip := strings.TrimSpace(mustDocker(client, "fleet", "describe", name+".1", "--format", "{{.IP}}"))
	stop := poll(ip)
	t0 := time.Now()
	out := mustDockerOut(client, "fleet", "migrate", name+".1", "--to", dst, "--format", "json")
	total := time.Since(t0).Seconds()
	p := stop()
	var res api.MigrateResult
	check(json.Unmarshal([]byte(out), &res))
	return measure{gap: p.MaxGapMs / 1000, total: total, poll: p, res: &res}
}

// nativeRun is the path RESTfulSwarm takes, through the engines' own API.
func nativeRun(mb int) measure {
	name := fmt.Sprintf("native%d", mb)
	for _, h := range []string{src, dst} {
		_, _ = dockerErr(h, "rm", "-f", name)
	}
	mustDocker(src, "run", "-d", "--name", name, "--network", "fleet", "--memory", fmt.Sprintf("%dm", mb+256),
		"-e", fmt.Sprintf("BALLAST_MB=%d", mb), image)
	defer func() {
		for _, h := range []string{src, dst} {
			_, _ = dockerErr(h, "rm", "-f", name)
		}
	}()
	waitUp(src, name)
	ip := strings.TrimSpace(mustDocker(src, "inspect", "-f", `{{(index .NetworkSettings.Networks "fleet").IPAddress}}`, name))
	// A destination that restores only into a network holder (Docker 28,
	// see the README's Engines) gets one, as a user would make it by hand:
	// the checkpoint leaves the namespace out, the holder takes the IP.
	holder := needsHolder(dst)
	if holder {
		defer func() { _, _ = dockerErr(dst, "rm", "-f", name+".netns") }()
		_, _ = dockerErr(dst, "rm", "-f", name+".netns")
	}
	pid := strings.TrimSpace(mustDocker(src, "inspect", "-f", "{{.State.Pid}}", name))
	stop := poll(ip)
	t0 := time.Now()
	if holder {
		restore := criuConfig(fmt.Sprintf("external net[%d]:extRootNetNS", netnsInode(pid)))
		mustDocker(src, "checkpoint", "create", name, "cp")
		restore()
	} else {
		mustDocker(src, "checkpoint", "create", name, "cp")
	}
	mustDocker(src, "network", "disconnect", "-f", "fleet", name)
	net := []string{"--network", "fleet", "--ip", ip}
	if holder {
		mustDocker(dst, "run", "-d", "--name", name+".netns", "--network", "fleet", "--ip", ip, "docker-fleet/anchor:latest")
		net = []string{"--network", "container:" + name + ".netns"}
	}
	mustDocker(dst, append(append([]string{"create", "--name", name}, net...), "--memory", fmt.Sprintf("%dm", mb+256),
		"-e", fmt.Sprintf("BALLAST_MB=%d", mb), image)...)
	from := filepath.Join(dataRoot(src), "containers", id(src, name), "checkpoints", "cp")
	to := filepath.Join(dataRoot(dst), "containers", id(dst, name), "checkpoints")
	check(os.MkdirAll(to, 0o700))
	out, err := exec.Command("cp", "-a", from, to).CombinedOutput()
	if err != nil {
		fail("cp: %v: %s", err, out)
	}
	mustDocker(dst, "start", "--checkpoint", "cp", name)
	total := time.Since(t0).Seconds()
	p := stop()
	return measure{gap: p.MaxGapMs / 1000, total: total, poll: p}
}

// needsHolder says whether host h's engine restores a checkpoint only into
// a network holder (Docker 26.0, 28 and later).
func needsHolder(h string) bool {
	v := strings.TrimSpace(mustDocker(h, "version", "-f", "{{.Server.Version}}"))
	var major, minor int
	_, _ = fmt.Sscanf(v, "%d.%d", &major, &minor)
	return major >= 28 || (major == 26 && minor == 0)
}

func netnsInode(pid string) uint64 {
	st, err := os.Stat("/proc/" + pid + "/ns/net")
	check(err)
	return st.Sys().(*syscall.Stat_t).Ino
}

// criuConfig adds a line to the host's CRIU configuration for runc until
// the returned function is called.
func criuConfig(line string) func() {
	const conf = "/etc/criu/runc.conf"
	old, err := os.ReadFile(conf)
	check(err)
	check(os.WriteFile(conf, append(bytes.TrimRight(old, "\n"), []byte("\n"+line+"\n")...), 0o644))
	return func() { check(os.WriteFile(conf, old, 0o644)) }
}

// poll starts the workload's poller on the client host; stop returns its
// summary, after a moment for the restored workload to answer.
func poll(ip string) func() pollSummary {
	name := "bench-poller"
	_, _ = dockerErr(client, "rm", "-f", name)
	mustDocker(client, "run", "-d", "--name", name, "--network", "fleet", image, "poll", "http://"+ip+":8080/", "30")
	time.Sleep(2 * time.Second)
	return func() pollSummary {
		time.Sleep(2 * time.Second)
		mustDocker(client, "stop", name)
		logs := strings.Split(strings.TrimSpace(mustDocker(client, "logs", name)), "\n")
		_, _ = dockerErr(client, "rm", "-f", name)
		var s pollSummary
		check(json.Unmarshal([]byte(logs[len(logs)-1]), &s))
		return s
	}
}

func waitUp(h, name string) {
	for i := 0; i < 100; i++ {
		if out, _ := dockerErr(h, "logs", name); strings.Contains(out, "listening") {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	fail("%s did not start on %s", name, h)
}

func dataRoot(h string) string {
	return strings.TrimSpace(mustDocker(h, "info", "-f", "{{.DockerRootDir}}"))
}
func id(h, name string) string {
	return strings.TrimSpace(mustDocker(h, "inspect", "-f", "{{.Id}}", name))
}

func mustDocker(ctx string, args ...string) string {
	out, err := dockerErr(ctx, args...)
	if err != nil {
		fail("docker --context %s %v: %v\n%s", ctx, args, err, out)
	}
	return out
}

// mustDockerOut is mustDocker's standard output alone.
func mustDockerOut(ctx string, args ...string) string {
	var out, errOut bytes.Buffer
	cmd := exec.Command("docker", append([]string{"--context", ctx}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		fail("docker --context %s %v: %v\n%s", ctx, args, err, errOut.String())
	}
	return out.String()
}

func dockerErr(ctx string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command("docker", append([]string{"--context", ctx}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func check(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}
