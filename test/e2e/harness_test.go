//go:build e2e

// Package e2e runs the real docker CLI with the installed fleet plugin
// against the simulator's engines (make e2e brings them up fresh).
package e2e

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"

	"github.com/docker-fleet/fleet/shared/pki"
	"github.com/docker-fleet/fleet/test/testkit"
)

// Manager and the first workers of the simulator.
const (
	manager = "h1"
	subnet  = "10.215.0.0/24"
)

var workers = []string{"h2", "h3"}

type result = testkit.Result

func run(t *testing.T, name string, args ...string) result {
	t.Helper()
	return testkit.Run(t, name, args...)
}

// docker runs the docker CLI against the engine of context ctxName.
func docker(t *testing.T, ctxName string, args ...string) result {
	t.Helper()
	return testkit.Docker(t, ctxName, args...)
}

// mustDocker is docker that fails the test on a non-zero exit.
func mustDocker(t *testing.T, ctxName string, args ...string) string {
	t.Helper()
	return testkit.MustDocker(t, ctxName, args...)
}

// sim runs the simulator script.
func sim(t *testing.T, args ...string) {
	t.Helper()
	r := run(t, simScript(), args...)
	assert.Assert(t, r.Code == 0, "sim.sh %v\n%s", args, r)
}

func simScript() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "sim", "sim.sh")
}

// initFleet runs init for the three-host fleet; init is idempotent, so every
// test that needs the fleet calls it.
func initFleet(t *testing.T) result {
	t.Helper()
	args := []string{"fleet", "init", "--subnet", subnet}
	for _, w := range workers {
		args = append(args, "--worker", w)
	}
	r := docker(t, manager, args...)
	assert.Assert(t, r.Code == 0, "fleet init\n%s", r)
	return r
}

// fleetCA reads the fleet CA straight from the swarm config init stored.
func fleetCA(t *testing.T) *pki.CA {
	t.Helper()
	raw := mustDocker(t, manager, "config", "inspect", "docker-fleet-ca", "--format", "{{json .Spec.Data}}")
	var data []byte
	assert.NilError(t, json.Unmarshal([]byte(raw), &data))
	ca, err := pki.ParseBundle(data)
	assert.NilError(t, err)
	return ca
}

// withoutCertificate is cfg showing no client certificate.
func withoutCertificate(cfg *tls.Config) *tls.Config {
	bare := cfg.Clone()
	bare.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tls.Certificate{}, nil }
	return bare
}

// foreignClient dials host h's agent with an operator certificate of
// another CA: it trusts the agent, the agent must not trust it.
func foreignClient(t *testing.T, ca *pki.CA, h string) *tls.Config {
	t.Helper()
	other, err := pki.NewCA("not the fleet")
	assert.NilError(t, err)
	foreign, err := other.Issue("e2e-client", pki.RoleOperator, pki.OperatorValidity)
	assert.NilError(t, err)
	foreign.CA = ca.CertPEM
	cfg, err := foreign.ClientConfig(h)
	assert.NilError(t, err)
	return cfg
}

// swarmNodes returns hostname → status of the manager's swarm nodes.
func swarmNodes(t *testing.T) map[string]string {
	t.Helper()
	out := mustDocker(t, manager, "node", "ls", "--format", "{{.Hostname}} {{.Status}}")
	nodes := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			nodes[f[0]] = f[1]
		}
	}
	return nodes
}

// hostAddr is the simulator's address of host h ("h2" → 10.213.0.12).
func hostAddr(h string) string {
	n, _ := strconv.Atoi(strings.TrimPrefix(h, "h"))
	return "10.213.0." + strconv.Itoa(10+n)
}

// listenIn opens a TCP listener on port inside host h's network namespace,
// from a thread of its own that enters the namespace and then dies with it.
func listenIn(t *testing.T, h string, port int) net.Listener {
	t.Helper()
	type res struct {
		ln  net.Listener
		err error
	}
	ch := make(chan res)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		f, err := os.Open("/run/netns/" + h)
		if err != nil {
			ch <- res{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- res{err: err}
			return
		}
		ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
		ch <- res{ln, err}
	}()
	r := <-ch
	assert.NilError(t, r.err)
	t.Cleanup(func() { r.ln.Close() })
	return r.ln
}

// cutLink drops what a sends to b (both ways with both); the returned
// function heals it.
func cutLink(t *testing.T, a, b string, both bool) func() {
	t.Helper()
	rules := [][]string{{"FORWARD", "-s", hostAddr(a), "-d", hostAddr(b), "-j", "DROP"}}
	if both {
		rules = append(rules, []string{"FORWARD", "-s", hostAddr(b), "-d", hostAddr(a), "-j", "DROP"})
	}
	for _, r := range rules {
		run(t, "iptables", append([]string{"-I"}, r...)...)
	}
	healed := false
	heal := func() {
		if !healed {
			healed = true
			for _, r := range rules {
				run(t, "iptables", append([]string{"-D"}, r...)...)
			}
		}
	}
	t.Cleanup(heal)
	return heal
}
