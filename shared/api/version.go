package api

import "strconv"

// latestAPI is the version of this protocol: what the agents serve and
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
//   - 3: upgrades that hand over: /v1/node/drain (PathDrain).
//   - 4: container options (spec.Options) on create, carried by a
//     migration (ReceiveHeader.HostConfig, PrepareResponse.API); extra
//     networks, secrets and configs (spec.Attachments,
//     CreateRequest.Files, ReceiveHeader.Extra and Files); images sent
//     between nodes (PathImages…); Compose projects: spec.Service.Project
//     (a container label), Aliases (container_name) and DependsOn, with
//     FleetContainer.ExitCode for service_completed_successfully.
//   - 5: a container's logs kept across its migrations: GET and DELETE
//     of PathContainer + name + LogsSuffix.
const latestAPI = 5

// APIVersion is the protocol version this build speaks: latestAPI, unless
// the build was stamped to speak an older one (apiStamp).
var APIVersion = stampedAPI(apiStamp)

// apiStamp is set only by the end-to-end tests' builds of a "previous
// release" (-ldflags -X github.com/docker-fleet/fleet/shared/api.apiStamp=1):
// the same code, announcing an older API, so that version skew is tested
// with real binaries.
var apiStamp string

func stampedAPI(s string) int {
	if n, err := strconv.Atoi(s); err == nil && n >= 1 && n < latestAPI {
		return n
	}
	return latestAPI
}

// API is the protocol version the node's agent speaks: Info.APIVersion,
// or 1 for an agent from before versioning, which reports none.
func (i Info) API() int {
	if i.APIVersion <= 0 {
		return 1
	}
	return i.APIVersion
}
