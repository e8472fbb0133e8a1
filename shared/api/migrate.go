package api

import (
	"time"

	"fmt"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// Paths of live migration.
const (
	// PathMigrate: the CLI asks the source agent to migrate a container; the
	// answer is a stream of MigrateEvent, one JSON document a line.
	PathMigrate = "/v1/migrate"
	// PathFollow: the CLI follows a migration this node drives or drove
	// (FollowRequest): its events from the first, as PathMigrate streams them.
	PathFollow = "/v1/migrate/follow"
	// PathMigrateCheck: the CLI asks the source agent whether a container
	// can be checkpointed (CheckRequest, CheckResult); nothing changes.
	PathMigrateCheck = "/v1/migrate/check"
	// PathPrepare: the source asks the destination whether it can take it.
	PathPrepare = "/v1/migrations/prepare"
	// PathImageLoad: the source streams `docker save` of an image the
	// destination lacks.
	PathImageLoad = "/v1/images/load"
	// PathReceive: the source streams the container (a tar of rootfs/,
	// volumes/NAME/ and checkpoint/) with the ReceiveHeader in HeaderReceive
	// and the CRC-32C of the body in the TrailerCRC32C trailer; the
	// destination restores it.
	PathReceive = "/v1/migrations/receive"
	// PathExpect: the CLI tells the destination which migration to accept
	// (Expectation), before it asks the source to start.
	PathExpect = "/v1/migrations/expect"
	// PathDecision: the source tells the destination its decision on a
	// migration whose copy the destination restored (Decision); until then
	// that copy runs fenced, its network locked.
	PathDecision = "/v1/migrations/decision"
	// PathOutcome: one side of a migration asks the other what it knows of
	// it (OutcomeRequest, Outcome): a destination holding a fenced copy
	// asks the source, which alone decides.
	PathOutcome = "/v1/migrations/outcome"
	// PathLeave: the CLI asks a node's agent to take its node out of the
	// swarm and remove itself.
	PathLeave = "/v1/leave"

	HeaderReceive = "X-Fleet-Receive"
	// HeaderMigration names the announced migration on every node-to-node
	// request (prepare, image load, receive).
	HeaderMigration = "X-Fleet-Migration"
	TrailerCRC32C   = "X-Fleet-Crc32c"
)

// Sections of the receive stream.
const (
	SectionRootfs     = "rootfs/"
	SectionVolumes    = "volumes/"
	SectionCheckpoint = "checkpoint/"
)

// MigrateRequest asks a source agent to move one of its containers.
type MigrateRequest struct {
	// ID names the migration the destination was told to expect.
	ID        string `json:"id"`
	Container string `json:"container"`
	To        string `json:"to"`
	ToAddr    string `json:"toAddr"`
}

// FollowRequest names the migration to follow.
type FollowRequest struct {
	ID string `json:"id"`
}

// CheckRequest names a container whose processes the source agent looks
// at for what CRIU cannot checkpoint.
type CheckRequest struct {
	Container string `json:"container"`
}

// CheckResult is the source's verdict before any freeze: Problems say, in
// a user's words, what stops the checkpoint and what to change.
type CheckResult struct {
	Container string   `json:"container"`
	Node      string   `json:"node"`
	OK        bool     `json:"ok"`
	Problems  []string `json:"problems,omitempty"`
}

// Expectation announces a migration to its destination: from which node,
// which container, with what it may bring. The destination refuses every
// node request that does not match one.
type Expectation struct {
	ID        string `json:"id"`
	From      string `json:"from"`
	Container string `json:"container"`
	Network   string `json:"network"`
	Cores     int    `json:"cores"`
	Memory    int64  `json:"memory"`
	// FromAddr is the source agent's address: a destination that holds a
	// fenced copy asks it for the outcome.
	FromAddr string `json:"fromAddr,omitempty"`
	// Privileges are what the twin may be given beyond a plain container.
	Privileges *Privileges `json:"privileges,omitempty"`
}

// Decision is the source's word on a migration: Commit makes the
// destination's copy the container; otherwise it is removed.
type Decision struct {
	Commit bool `json:"commit"`
}

// OutcomeRequest names the migration asked about.
type OutcomeRequest struct {
	ID string `json:"id"`
}

// Outcomes of a migration as its source knows it.
const (
	// OutcomePending: not decided yet; ask again.
	OutcomePending = "pending"
	// OutcomeCommitted: the destination's copy is the container.
	OutcomeCommitted = "committed"
	// OutcomeAborted: the source keeps the container (or never started).
	OutcomeAborted = "aborted"
	// OutcomeRestored: (a destination's answer) it holds a restored copy,
	// fenced, waiting for the decision.
	OutcomeRestored = "restored"
)

// Outcome answers an OutcomeRequest.
type Outcome struct {
	Outcome string `json:"outcome"`
}

// Phases of a migration, as MigrateEvent reports them.
const (
	// PhaseStart names the migration (its id, for --follow), before any
	// node is asked anything.
	PhaseStart      = "start"
	PhasePrepare    = "prepare"
	PhaseImage      = "image"
	PhaseCheckpoint = "checkpoint"
	PhaseTransfer   = "transfer"
	PhaseRestore    = "restore"
	PhaseRollback   = "rollback"
	PhaseDone       = "done"
)

// MigrateEvent is one line of a migration's progress. The last one has
// Result or Error.
type MigrateEvent struct {
	Phase   string `json:"phase"`
	Message string `json:"message,omitempty"`
	Bytes   int64  `json:"bytes,omitempty"`
	// Total, with Bytes on a transfer's progress, is what the stream is
	// expected to carry in all: an estimate from the files measured before
	// the freeze and the CRIU images. 0 when not known (agents before it).
	Total  int64          `json:"total,omitempty"`
	Result *MigrateResult `json:"result,omitempty"`
	Error  string         `json:"error,omitempty"`
}

// MigrateResult is a finished migration's figures.
type MigrateResult struct {
	Container string `json:"container"`
	From      string `json:"from"`
	To        string `json:"to"`
	IP        string `json:"ip,omitempty"`
	Cpuset    string `json:"cpuset,omitempty"`
	// Downtime runs from the freeze to the restored process reachable on
	// the destination (its fence lifted), or to when the source stopped
	// telling it the decision (the destination's agent takes it later);
	// Total from the request to the end; both in seconds.
	Downtime float64       `json:"downtimeSeconds"`
	Total    float64       `json:"totalSeconds"`
	Bytes    int64         `json:"bytes"`
	Phases   *Phases       `json:"phases,omitempty"`
	Dump     *DumpStats    `json:"dump,omitempty"`
	Restore  *RestoreStats `json:"restore,omitempty"`
	Time     string        `json:"time"`
	// By is what moved it when no operator did: the leader's automatic
	// rebalance, and why (recorded in its history).
	By string `json:"by,omitempty"`
}

// Phases is a migration's frozen window, each step's end in seconds from
// the freeze, as the source saw it: the dump written, the stream's last
// byte sent, the destination's answer that its copy is restored (fenced),
// and the fence lifted (the copy reachable; 0 when the destination could
// not be told the decision at once, see Downtime). Twin and Restore are the
// destination's own durations of creating the twin inside the window and
// of the restore.
type Phases struct {
	Dump      float64 `json:"dumpSeconds"`
	LastByte  float64 `json:"lastByteSeconds"`
	Restored  float64 `json:"restoredSeconds"`
	Reachable float64 `json:"reachableSeconds"`
	Twin      float64 `json:"twinSeconds"`
	Restore   float64 `json:"restoreSeconds"`
}

// String is the timeline in one line.
func (p Phases) String() string {
	return fmt.Sprintf("dump %.2fs, last byte %.2fs, restored %.2fs (twin %.2fs, restore %.2fs), reachable %.2fs",
		p.Dump, p.LastByte, p.Restored, p.Twin, p.Restore, p.Reachable)
}

// DumpStats are CRIU's own figures of the checkpoint (times in µs).
type DumpStats struct {
	FreezingTime uint32 `json:"freezingTimeUs"`
	FrozenTime   uint32 `json:"frozenTimeUs"`
	MemdumpTime  uint32 `json:"memdumpTimeUs"`
	MemwriteTime uint32 `json:"memwriteTimeUs"`
	PagesScanned uint64 `json:"pagesScanned"`
	PagesWritten uint64 `json:"pagesWritten"`
}

// RestoreStats are CRIU's own figures of the restore (times in µs).
type RestoreStats struct {
	ForkingTime   uint32 `json:"forkingTimeUs"`
	RestoreTime   uint32 `json:"restoreTimeUs"`
	PagesRestored uint64 `json:"pagesRestored"`
}

// PrepareRequest is what the destination must be able to give.
type PrepareRequest struct {
	Name    string `json:"name"`
	Image   string `json:"image"`
	ImageID string `json:"imageID"`
	Cores   int    `json:"cores"`
	Memory  int64  `json:"memory"`
	// Files is what the writable layer and volumes will take on disk,
	// Checkpoint what the CRIU images will take in memory (tmpfs); their sum
	// bounds what the destination writes.
	Files      int64 `json:"files"`
	Checkpoint int64 `json:"checkpoint"`
	// InHolder says the container lives in a network holder's namespace
	// (see labels.NetnsOf): its checkpoint leaves the namespace out, so
	// the destination must give it one.
	InHolder bool `json:"inHolder,omitempty"`
}

// PrepareResponse says whether the destination needs the image streamed,
// and whether it restores the container into a network holder: then the
// source checkpoints the container's network namespace as external.
type PrepareResponse struct {
	HaveImage bool `json:"haveImage"`
	Holder    bool `json:"holder,omitempty"`
	// API is the destination agent's protocol version (0 before API 4):
	// the source refuses, before the freeze, what an older one would drop.
	API int `json:"api,omitempty"`
}

// ReceiveHeader describes the container being received: everything needed
// to create its twin on the destination.
type ReceiveHeader struct {
	ID         string           `json:"id"`
	Name       string           `json:"name"`
	From       string           `json:"from"`
	Checkpoint string           `json:"checkpoint"`
	Config     container.Config `json:"config"`
	Network    string           `json:"network"`
	IP         string           `json:"ip"`
	Aliases    []string         `json:"aliases,omitempty"`
	Ports      network.PortMap  `json:"ports,omitempty"`
	Volumes    []VolumeMount    `json:"volumes,omitempty"`
	Cores      int              `json:"cores"`
	Memory     int64            `json:"memory"`
	MemorySwap int64            `json:"memorySwap"`
	// HostConfig is the source container's: the destination carries over
	// the container options a fleet container may have (capabilities,
	// sysctls, ulimits, tmpfs, restart policy, …; see
	// workloads.CarryHostConfig) and nothing tied to the source host.
	// Agents of API 4 and newer read it.
	HostConfig *container.HostConfig `json:"hostConfig,omitempty"`
	// Extra are its endpoints on networks other than the fleet's, which
	// the twin joins with the same addresses and aliases (API 4).
	Extra []Endpoint `json:"extra,omitempty"`
	// Files are its secrets and configs with their content, which the
	// twin's node writes and mounts at the same targets (API 4). They
	// cross the network only here, inside the agents' mutual TLS.
	Files []File `json:"files,omitempty"`
	// ImagesDir says the checkpoint was made with runc directly: the
	// destination keeps the images in tmpfs and restores with images-dir.
	ImagesDir bool `json:"imagesDir,omitempty"`
	// TakenAt, on a background checkpoint (warm relocation), is when the
	// container was frozen for it, by its node's clock.
	TakenAt time.Time `json:"takenAt,omitzero"`
}

// Endpoints are the container's endpoints: on the fleet network first,
// then the others.
func (h ReceiveHeader) Endpoints() []Endpoint {
	return append([]Endpoint{{Network: h.Network, IP: h.IP, Aliases: h.Aliases}}, h.Extra...)
}

// Endpoint is a container's address and aliases on one network.
type Endpoint struct {
	Network string   `json:"network"`
	IP      string   `json:"ip"`
	Aliases []string `json:"aliases,omitempty"`
}

// VolumeMount is a named volume of a migrating container: the only kind of
// mount a migration carries (no host paths).
type VolumeMount struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// ReceiveResult is the destination's answer once the container runs there.
type ReceiveResult struct {
	ContainerID string        `json:"containerID"`
	Cpuset      string        `json:"cpuset"`
	IP          string        `json:"ip"`
	Restore     *RestoreStats `json:"restore,omitempty"`
	// Twin and Restored time the twin's creation inside the frozen window
	// and the restore, in seconds (Phases).
	Twin     float64 `json:"twinSeconds,omitempty"`
	Restored float64 `json:"restoreSeconds,omitempty"`
	// Volumes maps a volume's name on the source to its name here, where
	// the destination had to pick a new one.
	Volumes map[string]string `json:"volumes,omitempty"`
}

// LeaveRequest asks an agent to take its node out of the fleet; Force
// leaves even with fleet containers still on it.
type LeaveRequest struct {
	Force bool `json:"force"`
}

// Migration is one entry of a container's migration history, kept in the
// swarm.
type Migration = MigrateResult
