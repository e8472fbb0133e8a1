package deploy

import (
	"fmt"
	"strings"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/version"
)

// feature is something a service may ask for that agents before some API
// version (api.APIVersion) cannot do: create refuses it, by name, while
// any node's agent is older.
type feature struct {
	name  string
	api   int
	wants func(spec.Service) bool
}

var features = []feature{
	{"--checkpoint-every", 2, func(s spec.Service) bool { return s.CheckpointEvery != 0 }},
	{"container options", 4, func(s spec.Service) bool { return len(s.Options.Keys()) > 0 }},
	{"networks, secrets and configs", 4, func(s spec.Service) bool { return len(s.Networks)+len(s.Files()) > 0 }},
	{"files beside the Compose file", 4, func(s spec.Service) bool { return len(s.Copies) > 0 }},
	{"a Compose project", 4, func(s spec.Service) bool { return s.Project != "" || len(s.Aliases) > 0 || len(s.DependsOn) > 0 }},
	// An older leader would drop them from the definition it reads, and
	// relocate a dead node's replicas anywhere.
	{"placement constraints", 4, func(s spec.Service) bool { return len(s.Constraints) > 0 }},
}

// needsNewerAgents says whether s asks for anything that agents of API 1
// cannot do, so that create asks the agents for their Info only then.
func needsNewerAgents(s spec.Service) bool {
	for _, f := range features {
		if f.api > 1 && f.wants(s) {
			return true
		}
	}
	return false
}

// checkAgentAPI refuses s, naming what it asks for and the nodes whose
// agents are too old for it. A node whose agent did not answer is not
// judged: the scheduler leaves it out, and init upgrades it when it is
// back.
func checkAgentAPI(s spec.Service, nodes []fleet.NodeInfo) error {
	for _, f := range features {
		if !f.wants(s) {
			continue
		}
		if f.api > api.APIVersion {
			// A build that speaks an older API than its code (a stamped
			// "previous release") behaves as that release would.
			return fmt.Errorf("%s needs docker-fleet of API %d or newer: this one (%s) speaks API %d; upgrade docker-fleet", f.name, f.api, version.Version, api.APIVersion)
		}
		var old []string
		for _, n := range nodes {
			if n.Err == nil && n.Info.API() < f.api {
				old = append(old, fmt.Sprintf("%s (agent %s, API %d)", n.Hostname, n.Info.AgentVersion, n.Info.API()))
			}
		}
		switch len(old) {
		case 0:
			continue
		case 1:
			return fmt.Errorf("%s needs agents of API %d or newer: %s is older; upgrade the fleet with docker fleet init", f.name, f.api, old[0])
		default:
			return fmt.Errorf("%s needs agents of API %d or newer: %s are older; upgrade the fleet with docker fleet init", f.name, f.api, strings.Join(old, ", "))
		}
	}
	return nil
}
