package api

// PathGuard turns a node's guard on or off (docker fleet init --guard): the
// engine consulting the agent as its authorization plugin.
const PathGuard = "/v1/guard"

// GuardRequest is a PUT of PathGuard.
type GuardRequest struct {
	On bool `json:"on"`
}

// GuardStatus is a node's guard: On when the engine consults the agent now,
// Wanted when the agent is to put it back after a restart; Plugins are the
// engine's authorization plugins, the agent's among them or not.
type GuardStatus struct {
	On      bool     `json:"on"`
	Wanted  bool     `json:"wanted,omitempty"`
	Plugins []string `json:"plugins,omitempty"`
}
