package deploy

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/cliplugin/internal/fleet/fleettest"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/pki"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
	"github.com/docker-fleet/fleet/shared/swarmstore/swarmtest"
)

// fakeFleet is a Deployer over fake agents and an in-memory swarm: no
// network, no engine.
type fakeFleet struct {
	*fleettest.Fleet
	swarm *swarmtest.Swarm
	d     *Deployer
}

const mib = 1 << 20

// newFakeFleet is a fleet of n nodes h1…hn of cores cores and 1GiB each.
func newFakeFleet(t *testing.T, n, cores int) *fakeFleet {
	t.Helper()
	var nodes []*fleettest.Node
	for i := 1; i <= n; i++ {
		nodes = append(nodes, fleettest.NewNode("h"+string(rune('0'+i)), cores, 1024*mib))
	}
	f := fleettest.New(nodes...)
	sw := swarmtest.New()
	sw.AddFleetNetwork("fleet", "10.10.0.0/24")
	d := &Deployer{Fleet: &fleet.Fleet{Manager: sw}, Inventory: f.Inventory, Progress: logWriter{t}}
	return &fakeFleet{Fleet: f, swarm: sw, d: d}
}

// withSwarmNodes lists the fake nodes in the fake swarm too, whose
// availability (drain, activate) the inventory then reports.
func (f *fakeFleet) withSwarmNodes() {
	for _, n := range f.Nodes {
		f.swarm.AddNode(n.Swarm.Hostname, n.Swarm.Role, n.Swarm.AgentPort)
	}
	f.d.Inventory = func(ctx context.Context) (fleet.Inventory, error) {
		inv, err := f.Fleet.Inventory(ctx)
		if err != nil {
			return nil, err
		}
		nodes, err := swarmstore.Nodes(ctx, f.swarm)
		if err != nil {
			return nil, err
		}
		for _, st := range inv {
			for _, n := range nodes {
				if n.Hostname == st.Hostname {
					st.Availability = n.Availability
				}
			}
		}
		return inv, nil
	}
}

// logWriter puts a deployer's progress in the test's log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// service is a plain service of replicas that each take cores and 64MiB,
// with a healthcheck: a replacement counts as up as soon as it is healthy,
// which the fake's are at once.
func service(name string, replicas, cores int) spec.Service {
	s := spec.Service{Name: name, Image: "app:1", Replicas: replicas, Cores: cores, Memory: 64 * mib}
	s.Healthcheck = &spec.Healthcheck{Test: []string{"CMD", "true"}}
	return s
}

// containers are every fleet container, by name.
func (f *fakeFleet) containers(t *testing.T) map[string]api.FleetContainer {
	t.Helper()
	out := map[string]api.FleetContainer{}
	for _, n := range f.Nodes {
		for _, name := range n.Containers() {
			c, _ := n.Container(name)
			out[name] = c
		}
	}
	return out
}

// nodeOf is the node that runs the container.
func (f *fakeFleet) nodeOf(t *testing.T, name string) *fleettest.Node {
	t.Helper()
	for _, n := range f.Nodes {
		if _, ok := n.Container(name); ok {
			return n
		}
	}
	t.Fatalf("no container %s in the fleet", name)
	return nil
}

// claims are the claimed replica names.
func (f *fakeFleet) claims(t *testing.T) []string {
	t.Helper()
	cl, err := swarmstore.Claims(context.Background(), f.swarm)
	assert.NilError(t, err)
	var out []string
	for _, c := range cl {
		out = append(out, c.Name)
	}
	return out
}

// stored are the stored services' names.
func (f *fakeFleet) stored(t *testing.T) []string {
	t.Helper()
	svcs, err := swarmstore.ListServices(context.Background(), f.swarm)
	assert.NilError(t, err)
	var out []string
	for _, s := range svcs {
		out = append(out, s.Name)
	}
	return out
}

// ledgers are every node's ledger, by node.
func (f *fakeFleet) ledgers(t *testing.T) map[string]api.Ledger {
	t.Helper()
	out := map[string]api.Ledger{}
	for _, n := range f.Nodes {
		l, err := n.Ledger(context.Background())
		assert.NilError(t, err)
		out[n.Swarm.Hostname] = l
	}
	return out
}

// heldCores counts the cores fleet containers hold, fleet-wide.
func (f *fakeFleet) heldCores(t *testing.T) int {
	t.Helper()
	held := 0
	for _, l := range f.ledgers(t) {
		held += len(slices.DeleteFunc(l.Held, func(h api.Hold) bool { return !h.Fleet }))
	}
	return held
}

// create makes services and fails the test if it cannot.
func (f *fakeFleet) create(t *testing.T, svcs ...spec.Service) []api.FleetContainer {
	t.Helper()
	made, err := f.d.Create(context.Background(), svcs, CreateOptions{})
	assert.NilError(t, err)
	return made
}

// Without an Inventory, a Deployer reads the fleet through its agents'
// clients: here the swarm's two nodes, whose agents cannot be dialed.
func TestDeployerReadsTheFleetByDefault(t *testing.T) {
	ca, err := pki.NewCA("fleet")
	assert.NilError(t, err)
	sw := swarmtest.New()
	sw.AddNode("h1", "manager", 7970)
	sw.AddNode("h2", "worker", 7970)
	refused := errors.New("refused")
	d := &Deployer{Fleet: &fleet.Fleet{Manager: sw, CA: ca, CertDir: t.TempDir(),
		Dial: func(context.Context, string, string) (net.Conn, error) { return nil, refused }}}

	inv, err := d.inventory(context.Background())
	assert.NilError(t, err)
	assert.Check(t, is.Equal(inv.Nodes()[0].Hostname, "h1"))
	assert.Check(t, is.Len(inv, 2))
	for _, n := range inv {
		assert.Check(t, n.Agent != nil)
		assert.Check(t, errdefs.IsUnavailable(n.Err), "%v", n.Err)
		assert.Check(t, is.ErrorIs(n.Err, refused))
	}
}
