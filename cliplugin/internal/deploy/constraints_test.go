package deploy

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/spec"
)

// labelledFleet is h1 (a manager), h2 and h3 (workers, h3 labelled
// disk=ssd), as the swarm lists them.
func labelledFleet() fleet.Inventory {
	inv := portFleet(nil)
	for _, n := range inv {
		n.ID, n.Role, n.OS, n.Arch = "id-"+n.Hostname, "worker", "linux", "x86_64"
	}
	inv[0].Role = "manager"
	inv[2].Labels = map[string]string{"disk": "ssd"}
	return inv
}

// TestPlanConstraints: create and scale place only on the nodes that
// match, and say which constraint no node meets.
func TestPlanConstraints(t *testing.T) {
	inv := labelledFleet()
	s := spec.Service{Name: "db", Image: "postgres:15", Constraints: []string{"node.labels.disk==ssd"}}
	jobs, err := plan(schedulerNodes(inv), inv, s, 2, "fleet")
	assert.NilError(t, err)
	for _, j := range jobs {
		assert.Check(t, is.Equal(j.node.Hostname, "h3"))
	}

	s.Constraints = []string{"node.role==worker", "node.id!=id-h3"}
	jobs, err = plan(schedulerNodes(inv), inv, s, 1, "fleet")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(jobs[0].node.Hostname, "h2"))

	s.Constraints = []string{"node.labels.disk==nvme"}
	_, err = plan(schedulerNodes(inv), inv, s, 1, "fleet")
	assert.Check(t, is.Error(err, "cannot place 1 replica(s) of db: no node matches node.labels.disk==nvme (h1, h2 have no such label; h3 has disk=ssd)"))
}

func TestLeftOut(t *testing.T) {
	inv := labelledFleet()
	s := spec.Service{Name: "db", Constraints: []string{"node.role==worker", "node.labels.disk==ssd"}}
	assert.Check(t, is.DeepEqual(leftOut(inv, s), []LeftOutPlan{
		{Service: "db", Node: "h1", Why: "does not match node.role==worker (role manager)"},
		{Service: "db", Node: "h2", Why: "does not match node.labels.disk==ssd (no such label)"},
	}))
	assert.Check(t, is.Len(leftOut(inv, spec.Service{Name: "web"}), 0))
}

func TestCheckAgentAPIConstraints(t *testing.T) {
	s := spec.Service{Name: "db", Image: "postgres:15", Replicas: 1, Constraints: []string{"node.labels.disk==ssd"}}
	assert.Check(t, needsNewerAgents(s))
	old := []fleet.NodeInfo{nodeInfo("h1", "1.0", 4), nodeInfo("h2", "0.9", 3)}
	assert.Check(t, is.Error(checkAgentAPI(s, old),
		"placement constraints needs agents of API 4 or newer: h2 (agent 0.9, API 3) is older; upgrade the fleet with docker fleet init"))
	assert.Check(t, !needsNewerAgents(spec.Service{Name: "db", Image: "postgres:15", Node: "h2"}), "node.hostname== is --node, which any agent takes")
}
