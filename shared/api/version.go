package api

// APIVersion is the version of this protocol: what the agents serve and
// the CLI expects. It grows by one whenever a release adds routes or
// fields that an older peer lacks, so that the CLI can tell, by number,
// what a node's agent can do (Info.APIVersion) before it asks.
//
//   - 1: everything before versioning. An agent that reports no API
//     version (Info.APIVersion 0) is taken as 1.
//   - 2: warm relocation: services with checkpointEvery
//     (spec.Service.CheckpointEvery), the standby routes under
//     /v1/standby/ and /v1/node/rejoin (PathStandbyAssign, …, PathRejoin),
//     FleetContainer.Checkpoint and Ledger.Standbys.
const APIVersion = 2

// API is the protocol version the node's agent speaks: Info.APIVersion,
// or 1 for an agent from before versioning, which reports none.
func (i Info) API() int {
	if i.APIVersion <= 0 {
		return 1
	}
	return i.APIVersion
}
