package deploy

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// portFleet is three nodes; ports are each node's taken host ports, and
// its fleet containers are those holding them.
func portFleet(ports map[string][]api.HostPort) fleet.Inventory {
	var inv fleet.Inventory
	for _, name := range []string{"h1", "h2", "h3"} {
		l := api.Ledger{Node: name, Cores: []int{0, 1}, MemTotal: 1 << 30, Ports: ports[name]}
		for _, p := range ports[name] {
			l.Containers = append(l.Containers, api.FleetContainer{Name: p.Container, Service: "pp", Node: name})
		}
		inv = append(inv, &fleet.NodeState{Node: swarmstore.Node{Hostname: name, State: "ready", Availability: "active"}, Ledger: l})
	}
	return inv
}

func published(host uint16) spec.Service {
	return spec.Service{Name: "pp", Image: "fleet-workload:latest", Ports: []spec.Port{{Host: host, Container: 8080, Protocol: "tcp"}}}
}

// TestPlanHostPorts: create and scale plan with the replica's host ports,
// so one that fits no node is refused before anything is made.
func TestPlanHostPorts(t *testing.T) {
	inv := portFleet(nil)
	jobs, err := plan(schedulerNodes(inv), inv, published(18080), 3, "fleet")
	assert.NilError(t, err)
	var where []string
	for _, j := range jobs {
		where = append(where, j.node.Hostname)
	}
	assert.Check(t, is.DeepEqual(where, []string{"h1", "h2", "h3"}))

	_, err = plan(schedulerNodes(inv), inv, published(18080), 4, "fleet")
	assert.Check(t, is.ErrorContains(err, "cannot place 4 replica(s) of pp: no node can take it: "))
	assert.Check(t, is.ErrorContains(err, "h1: host port 18080/tcp taken by a new replica of pp"))

	// Scaling up a service whose replicas hold the port on every node.
	inv = portFleet(map[string][]api.HostPort{
		"h1": {{Port: 18080, Protocol: "tcp", Container: "pp.1"}},
		"h2": {{Port: 18080, Protocol: "tcp", Container: "pp.2"}},
		"h3": {{Port: 18080, Protocol: "tcp", Container: "pp.3"}},
	})
	_, err = plan(schedulerNodes(inv), inv, published(18080), 1, "fleet")
	assert.Check(t, is.ErrorContains(err, "h2: host port 18080/tcp taken by pp.2"))
	_, err = plan(schedulerNodes(inv), inv, published(18081), 3, "fleet")
	assert.NilError(t, err, "another port is free")
}

// TestDestinationHostPorts: a migration goes only where the container's
// host ports are free, asked for or not.
func TestDestinationHostPorts(t *testing.T) {
	inv := portFleet(map[string][]api.HostPort{
		"h1": {{Port: 18080, Protocol: "tcp", Container: "pp.1"}},
		"h2": {{Port: 18080, Protocol: "tcp", Container: "pp.2"}},
	})
	// h3 is the busier node: without ports, h2 would be picked.
	inv[2].Ledger.Containers = []api.FleetContainer{{Name: "db.1", Node: "h3"}, {Name: "db.2", Node: "h3"}}
	c, src, ok := inv.Find("pp.1")
	assert.Assert(t, ok)
	dst, err := destination(inv, c, src, "", nil)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(dst.Hostname, "h3"))

	_, err = destination(inv, c, src, "h2", nil)
	assert.Check(t, is.ErrorContains(err, "no destination for pp.1: "))
	assert.Check(t, is.ErrorContains(err, "h2: host port 18080/tcp taken by pp.2"))

	// An agent too old to report ports: placed as before.
	inv[0].Ledger.Ports = nil
	dst, err = destination(inv, c, src, "h2", nil)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(dst.Hostname, "h2"))
}

// TestDestinationConstraints: a migration without --to goes only to a node
// that meets its service's placement constraints, and --to elsewhere is
// refused.
func TestDestinationConstraints(t *testing.T) {
	inv := portFleet(map[string][]api.HostPort{"h1": {{Port: 18080, Protocol: "tcp", Container: "pp.1"}}})
	c, src, ok := inv.Find("pp.1")
	assert.Assert(t, ok)
	inv[2].Ledger.Containers = []api.FleetContainer{{Name: "db.1", Node: "h3"}} // h2 is idler: picked without
	dst, err := destination(inv, c, src, "", nil)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(dst.Hostname, "h2"))
	dst, err = destination(inv, c, src, "", []string{"node.hostname!=h2"})
	assert.NilError(t, err)
	assert.Check(t, is.Equal(dst.Hostname, "h3"))
	_, err = destination(inv, c, src, "h2", []string{"node.hostname!=h2"})
	assert.Check(t, is.ErrorContains(err, "no destination for pp.1: "))
}
