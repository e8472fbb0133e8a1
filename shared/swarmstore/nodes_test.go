package swarmstore

import (
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/spec"
)

func TestFindNode(t *testing.T) {
	nodes := []Node{
		{ID: "abc123", Hostname: "h1"},
		{ID: "abd456", Hostname: "h2"},
		{ID: "xyz789", Hostname: "h3"},
	}
	n, err := FindNode(nodes, "h2")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(n.ID, "abd456"))
	n, err = FindNode(nodes, "xyz")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(n.Hostname, "h3"))
	_, err = FindNode(nodes, "ab")
	assert.Check(t, is.ErrorContains(err, `no node named "ab"`), "prefixes shorter than 3 do not match")
	_, err = FindNode(nodes, "abc1")
	assert.NilError(t, err)
	nodes = append(nodes, Node{ID: "abc999", Hostname: "h4"})
	_, err = FindNode(nodes, "abc")
	assert.Check(t, is.ErrorContains(err, "ambiguous"))
	assert.Check(t, errdefs.IsInvalidArgument(err))
	_, err = FindNode(nodes, "h9")
	assert.Check(t, is.ErrorContains(err, `no node named "h9"`))
	assert.Check(t, errdefs.IsNotFound(err))
}

func TestFromSwarmNode(t *testing.T) {
	n := fromSwarmNode(swarm.Node{
		ID: "n1",
		Spec: swarm.NodeSpec{
			Annotations:  swarm.Annotations{Labels: map[string]string{labels.AgentPort: "7600"}},
			Role:         swarm.NodeRoleManager,
			Availability: swarm.NodeAvailabilityActive,
		},
		Description:   swarm.NodeDescription{Hostname: "h1"},
		Status:        swarm.NodeStatus{State: swarm.NodeStateReady, Addr: "0.0.0.0"},
		ManagerStatus: &swarm.ManagerStatus{Leader: true, Addr: "10.0.0.5:2377"},
	})
	assert.Check(t, is.Equal(n.Addr, "10.0.0.5"), "a manager's 0.0.0.0 is replaced by its manager address")
	assert.Check(t, is.Equal(n.AgentPort, 7600))
	assert.Check(t, n.Leader)
	assert.Check(t, is.Equal(n.Role, "manager"))

	w := fromSwarmNode(swarm.Node{Status: swarm.NodeStatus{Addr: "10.0.0.6"}})
	assert.Check(t, is.Equal(w.Addr, "10.0.0.6"))
	assert.Check(t, is.Equal(w.AgentPort, 0), "no label, no agent")
}

// TestNodeFacts: placement constraints see the node's labels and platform
// as the swarm reports them.
func TestNodeFacts(t *testing.T) {
	n := fromSwarmNode(swarm.Node{ID: "id1", Description: swarm.NodeDescription{Hostname: "h2", Platform: swarm.Platform{OS: "linux", Architecture: "x86_64"}},
		Spec: swarm.NodeSpec{Role: swarm.NodeRoleWorker, Annotations: swarm.Annotations{Labels: map[string]string{"disk": "ssd"}}}})
	assert.Check(t, is.DeepEqual(n.Facts(), spec.NodeFacts{Hostname: "h2", ID: "id1", Role: "worker",
		Labels: map[string]string{"disk": "ssd"}, OS: "linux", Arch: "x86_64"}))
}
