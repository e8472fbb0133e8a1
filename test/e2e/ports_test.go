//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// A fixed host port is one per node: create, scale and migrate place by it
// and refuse, naming the port, before anything changes, where the engine
// would refuse only once a container starts.
func TestHostPortsArePlaced(t *testing.T) {
	initFleet(t)
	removeServices(t, "pp", "pq")
	hosts := fleetHosts(t)
	n := len(hosts) // 3 on the simulator
	assert.Assert(t, n >= 2, "hosts %v", hosts)

	// One replica per node: no node can take two.
	mustFleet(t, "create", "--name", "pp", "--image", workload, "--replicas", strconv.Itoa(n), "-p", "18080:8080")
	pp := ofService(engineContainers(t), "pp")
	assert.Assert(t, is.Len(pp, n))
	on := map[string]string{} // replica → host
	for _, c := range pp {
		on[c.Name] = c.Host
		assert.Check(t, c.State.Running, c.Name)
		assert.Check(t, is.Equal(c.HostConfig.PortBindings["8080/tcp"][0].HostPort, "18080"), c.Name)
	}
	assert.Check(t, is.Len(hostsOf(pp), n), "%v", on)

	// One more has nowhere to go: refused naming the port, nothing changes.
	r := fleetCmd(t, "scale", fmt.Sprintf("pp=%d", n+1))
	assert.Check(t, is.Equal(r.Code, 1), r.String())
	assert.Check(t, is.Contains(r.Stderr, "host port 18080/tcp taken by pp."), r.String())
	assert.Check(t, is.Len(ofService(engineContainers(t), "pp"), n))
	assert.Check(t, is.Equal(replicasDesired(t, "pp"), n))

	// A create with more replicas than nodes is refused before anything is
	// made: no container, no definition.
	r = fleetCmd(t, "create", "--name", "pq", "--image", workload, "--replicas", strconv.Itoa(n+1), "-p", "18081:8080")
	assert.Check(t, is.Equal(r.Code, 1), r.String())
	assert.Check(t, is.Contains(r.Stderr, "host port 18081/tcp taken by a new replica of pq"), r.String())
	assert.Check(t, is.Len(ofService(engineContainers(t), "pq"), 0))
	assert.Check(t, fleetCmd(t, "describe", "pq").Code != 0, "pq has a definition")

	// A migration to a node where the port is taken is refused, and the
	// container runs on where it was.
	src, dst := on["pp.1"], on["pp.2"]
	r = fleetCmd(t, "migrate", "pp.1", "--to", dst)
	assert.Check(t, is.Equal(r.Code, 1), r.String())
	assert.Check(t, is.Contains(r.Stderr, dst+": host port 18080/tcp taken by pp.2"), r.String())
	c, ok := containerOn(t, "pp.1")
	assert.Assert(t, ok)
	assert.Check(t, is.Equal(c.Host, src))
	assert.Check(t, c.State.Running)
}

// A container outside the fleet holds its host port as much as a replica,
// even one only created: the ledger counts every container on the engine.
func TestHostPortOfAContainerOutsideTheFleet(t *testing.T) {
	initFleet(t)
	removeServices(t, "pr")
	h := workers[len(workers)-1]
	mustDocker(t, h, "create", "--name", "portholder", "-p", "18092:8080", workload)
	t.Cleanup(func() { docker(t, h, "rm", "-f", "portholder") })

	r := fleetCmd(t, "create", "--name", "pr", "--image", workload, "--node", h, "-p", "18092:8080")
	assert.Check(t, is.Equal(r.Code, 1), r.String())
	assert.Check(t, is.Contains(r.Stderr, h+": host port 18092/tcp taken by portholder"), r.String())
	assert.Check(t, is.Len(ofService(engineContainers(t), "pr"), 0))

	// Another protocol of the same number is another port.
	mustFleet(t, "create", "--name", "pr", "--image", workload, "--node", h, "-p", "18092:8080/udp")
	assert.Check(t, is.Len(ofService(engineContainers(t), "pr"), 1))
}

func hostsOf(cs []engineContainer) map[string]bool {
	out := map[string]bool{}
	for _, c := range cs {
		out[c.Host] = true
	}
	return out
}

// replicasDesired is the service's recorded count of replicas.
func replicasDesired(t *testing.T, svc string) int {
	t.Helper()
	var v struct {
		Desired int `json:"desired"`
	}
	assert.NilError(t, json.Unmarshal([]byte(mustFleet(t, "describe", svc, "--format", "json")), &v))
	return v.Desired
}
