package deploy

import (
	"errors"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

func nodeInfo(host, agent string, apiVersion int) fleet.NodeInfo {
	return fleet.NodeInfo{Node: swarmstore.Node{Hostname: host}, Info: api.Info{Node: host, AgentVersion: agent, APIVersion: apiVersion}}
}

func TestCheckAgentAPI(t *testing.T) {
	warm := spec.Service{Name: "db", Image: "postgres:15", Replicas: 1, CheckpointEvery: spec.Duration(30 * time.Second)}
	cold := spec.Service{Name: "web", Image: "nginx", Replicas: 2}
	current := []fleet.NodeInfo{nodeInfo("h1", "1.0", 2), nodeInfo("h2", "1.0", 2)}
	mixed := []fleet.NodeInfo{nodeInfo("h1", "1.0", 2), nodeInfo("h2", "0.9", 0), nodeInfo("h3", "1.1", 3)}
	twoOld := []fleet.NodeInfo{nodeInfo("h1", "0.8", 1), nodeInfo("h2", "0.9", 0), nodeInfo("h3", "1.0", 2)}
	unreachable := []fleet.NodeInfo{nodeInfo("h1", "1.0", 2), {Node: swarmstore.Node{Hostname: "h2"}, Err: errors.New("connection refused")}}

	assert.Check(t, needsNewerAgents(warm))
	assert.Check(t, !needsNewerAgents(cold))

	assert.Check(t, checkAgentAPI(warm, current))
	assert.Check(t, checkAgentAPI(cold, mixed), "a service without checkpoints runs on any agent")
	assert.Check(t, checkAgentAPI(cold, twoOld))
	assert.Check(t, checkAgentAPI(warm, unreachable), "an agent that does not answer is not judged")
	assert.Check(t, checkAgentAPI(warm, nil))

	assert.Check(t, is.Error(checkAgentAPI(warm, mixed),
		"--checkpoint-every needs agents of API 2 or newer: h2 (agent 0.9, API 1) is older; upgrade the fleet with docker fleet init"))
	assert.Check(t, is.Error(checkAgentAPI(warm, twoOld),
		"--checkpoint-every needs agents of API 2 or newer: h1 (agent 0.8, API 1), h2 (agent 0.9, API 1) are older; upgrade the fleet with docker fleet init"))
}

// A feature gated on an API version this build does not speak could never
// be used.
func TestFeaturesWithinAPIVersion(t *testing.T) {
	for _, f := range features {
		assert.Check(t, f.api >= 1 && f.api <= api.APIVersion, "%s: API %d", f.name, f.api)
	}
}
