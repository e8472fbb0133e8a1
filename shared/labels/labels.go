// Package labels names the labels and swarm objects through which the fleet
// keeps its state in the swarm and marks what it owns on each engine.
package labels

const (
	// Prefix of every label the fleet sets.
	Prefix = "com.docker.fleet"

	// Network marks the fleet's overlay network.
	Network = Prefix + ".network"
	// CA marks the swarm config holding the fleet CA.
	CA = Prefix + ".ca"
	// AgentPort is the node label recording the port its agent listens on.
	AgentPort = Prefix + ".agent-port"
	// HostCaps is the node label recording which of the capabilities the
	// agent asks for the node's root has (comma-separated).
	HostCaps = Prefix + ".host-caps"
	// Service and Replica mark fleet containers.
	Service = Prefix + ".service"
	Replica = Prefix + ".replica"
	// Project marks a fleet container with its service's Compose project.
	Project = Prefix + ".project"
	// Exclusive is "true" on a container whose cpuset the fleet holds for it.
	Exclusive = Prefix + ".exclusive"
	// NetworkName names the fleet network a container is attached to.
	NetworkName = Prefix + ".network-name"
	// NetnsOf marks a network holder: the container whose network namespace
	// (address, aliases, published ports, hostname) a fleet container
	// restored on a newer engine lives in. Its value is that container's
	// name.
	NetnsOf = Prefix + ".netns-of"
	// Replicas is the desired replica count on a stored service definition.
	Replicas = Prefix + ".replicas"
	// History marks the swarm config holding a container's migrations.
	History = Prefix + ".history"
	// ReplicaOf marks a replica name's claim with its service.
	ReplicaOf = Prefix + ".replica-of"
	// ClaimedFor, on a replica name's claim, is the node the replica was
	// placed on when it was made: the leader knows of a replica made just
	// before its node died even if it never saw it there.
	ClaimedFor = Prefix + ".claimed-for"
	// Content holds, on a stored service definition or history, its newest
	// version: a config's data cannot change, but its labels can, in one
	// versioned update, so a change never leaves a moment without either.
	Content = Prefix + ".content"
	// Revocation marks a swarm config holding one revocation; its value
	// is the revoked node.
	Revocation = Prefix + ".revocation"
	// FailoverAfter, on the CA's config, is how long a node may be silent
	// before the leader's agent declares it dead (a Go duration; "0"
	// turns relocation off).
	FailoverAfter = Prefix + ".failover-after"
	// Down marks a dead node's record; its value is the node.
	Down = Prefix + ".down"
	// RelocatedFrom marks a relocation's record with the dead node the
	// replica left.
	RelocatedFrom = Prefix + ".relocated-from"
	// RelocatedTo, on a relocation's record, names the node where the
	// replica was made anew: set once it is made.
	RelocatedTo = Prefix + ".relocated-to"
	// Fenced, on a relocation's record, says the node it left is back and
	// has removed its copy: the record stays as history until the replica
	// is relocated again.
	Fenced = Prefix + ".fenced"
	// CheckpointEvery, on a fleet container, is the interval of its
	// background checkpoints (a Go duration; absent: none).
	CheckpointEvery = Prefix + ".checkpoint-every"
	// Stats marks the config holding the fleet's failover counters.
	Stats = Prefix + ".stats"
	// Revision, on a fleet container, is the revision of its service's
	// definition it was made from (spec.Service.Revision).
	Revision = Prefix + ".revision"
	// Update, on a stored service definition, is the state of its newest
	// update (JSON, swarmstore.Update); Previous the definition before it,
	// which --rollback restores.
	Update   = Prefix + ".update"
	Previous = Prefix + ".previous"
	// SuccessorOf, on a start-first update's new container, names the
	// replica it replaces; Pending holds the endpoints (JSON, with the
	// service's names) it joins at its promotion.
	SuccessorOf = Prefix + ".successor-of"
	Pending     = Prefix + ".pending-endpoints"
)

const (
	// CAConfigName is the swarm config that stores the fleet CA (certificate
	// and key, PEM). Swarm configs live in the raft store and are readable
	// by anyone who can reach the manager's API, who already controls the
	// fleet.
	CAConfigName = "docker-fleet-ca"
	// ServiceConfigPrefix starts the name of the swarm config that stores a
	// service's definition.
	ServiceConfigPrefix = "docker-fleet-service."
	// HistoryConfigPrefix starts the name of the swarm config that stores a
	// container's migration history.
	HistoryConfigPrefix = "docker-fleet-history."
	// ReplicaClaimPrefix starts the name of the swarm config that claims a
	// replica's name (SERVICE.N) fleet-wide.
	ReplicaClaimPrefix = "docker-fleet-replica."
	// RevocationConfigPrefix starts the name of a revocation's config.
	RevocationConfigPrefix = "docker-fleet-revoked."
	// DownConfigPrefix starts the name of a dead node's record (its last
	// known containers).
	DownConfigPrefix = "docker-fleet-down."
	// RelocationConfigPrefix starts the name of a relocated replica's
	// record: taken before the replica is made anew, so that two leaders
	// never relocate it twice; marked Fenced when its old node is back.
	RelocationConfigPrefix = "docker-fleet-relocation."
	// StatsConfigName holds the fleet's failover counters in its labels.
	StatsConfigName = "docker-fleet-stats"
	// Guard on the CA config is "true" when every node's engine is to
	// consult its agent as an authorization plugin (init --guard).
	Guard = Prefix + ".guard"
	// RebalanceEvery on the CA config is how often the leader's agent
	// rebalances the fleet on its own (a duration; absent or 0: never),
	// and RebalanceMaxMoves how many moves it may make each time.
	RebalanceEvery    = Prefix + ".rebalance.every"
	RebalanceMaxMoves = Prefix + ".rebalance.max-moves"
	// AgentPlugin is the managed plugin's name on every engine.
	AgentPlugin = "fleet-agent:latest"
)
