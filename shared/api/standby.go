package api

import "time"

// Warm relocation (README: "Failover"): a service created with
// --checkpoint-every has each replica checkpointed in the background while
// it runs, and the checkpoint (CRIU images, writable layer, volumes)
// replicated to a standby node the swarm leader's agent chose. When the
// replica's node dies, the standby node restores it from its newest
// complete checkpoint.
const (
	// PathStandbyAssign: the leader tells a replica's node where to send
	// its checkpoints (StandbyAssign).
	PathStandbyAssign = "/v1/standby/assign"
	// PathStandbyExpect: the leader tells the standby node to take a
	// replica's checkpoints from its node (StandbyExpect); a node accepts
	// no checkpoint it was not told to expect.
	PathStandbyExpect = "/v1/standby/expect"
	// PathStandbyReceive: one checkpoint, node to node, as a stream
	// (ReceiveHeader in HeaderReceive, the tar body, the CRC-32C trailer).
	PathStandbyReceive = "/v1/standby/receive"
	// PathStandbyRestore: the leader has the standby node restore a dead
	// node's replica from its newest complete checkpoint
	// (StandbyRestoreRequest, FleetContainer).
	PathStandbyRestore = "/v1/standby/restore"
	// PathStandbyDrop: the leader has a node forget its standby copy of a
	// replica that was removed or now runs on that node (StandbyDrop).
	PathStandbyDrop = "/v1/standby/drop"
	// PathRejoin: the leader has a node it removed from the swarm while it
	// was dead join again, once it is fenced (RejoinRequest, RejoinResult).
	PathRejoin = "/v1/node/rejoin"
)

// StandbyAssign names the standby node of one of the node's containers.
type StandbyAssign struct {
	Container string `json:"container"`
	To        string `json:"to"`
	ToAddr    string `json:"toAddr"`
}

// StandbyExpect names a replica whose checkpoints From will send, with
// what its checkpoints may hold: the fleet network and its limits.
type StandbyExpect struct {
	Container string `json:"container"`
	From      string `json:"from"`
	Network   string `json:"network"`
	Cores     int    `json:"cores"`
	Memory    int64  `json:"memory"`
	// Privileges are what the restored copy may be given beyond a plain
	// container (Expectation.Privileges).
	Privileges *Privileges `json:"privileges,omitempty"`
}

// StandbyDrop names a standby copy to forget.
type StandbyDrop struct {
	Container string `json:"container"`
}

// StandbyRestoreRequest asks for a replica to be restored from its
// standby copy on the fleet network.
type StandbyRestoreRequest struct {
	Container string `json:"container"`
	Network   string `json:"network"`
}

// CheckpointStatus is where a container's background checkpoints stand,
// as its node reports them.
type CheckpointStatus struct {
	// Every is the interval (a Go duration).
	Every string `json:"every"`
	// Standby is the node its checkpoints go to ("" until the leader
	// chose one).
	Standby string `json:"standby,omitempty"`
	// At is when the newest checkpoint the standby holds whole was
	// taken (zero: none yet).
	At time.Time `json:"at,omitzero"`
	// Seq counts the checkpoints sent since the container started here.
	Seq int `json:"seq,omitempty"`
	// Frozen is how long the container was frozen for the newest
	// checkpoint, in seconds (CRIU's frozen time).
	Frozen float64 `json:"frozen,omitempty"`
	// Bytes is what the newest checkpoint carried.
	Bytes int64 `json:"bytes,omitempty"`
	// Error is why the last checkpoint failed, if it did.
	Error string `json:"error,omitempty"`
}

// StandbyCopy is a checkpoint a node holds for another node's container.
type StandbyCopy struct {
	Container string    `json:"container"`
	From      string    `json:"from"`
	At        time.Time `json:"at"`
	Seq       int       `json:"seq"`
	Bytes     int64     `json:"bytes"`
	Cores     int       `json:"cores,omitempty"`
	Memory    int64     `json:"memory,omitempty"`
}

// RejoinRequest is how to join the swarm again. Removed is the swarm ID
// the leader removed: an engine cut off meanwhile may still take itself
// for that member.
type RejoinRequest struct {
	RemoteAddrs []string `json:"remoteAddrs"`
	JoinToken   string   `json:"joinToken"`
	Removed     string   `json:"removed"`
	// AdvertiseAddr is the node's address as the swarm knew it.
	AdvertiseAddr string `json:"advertiseAddr,omitempty"`
}

// RejoinResult is the node's new swarm identity.
type RejoinResult struct {
	NodeID string `json:"nodeId"`
}
