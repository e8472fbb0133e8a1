package api

import (
	"strconv"

	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/spec"
)

// Paths of the node's containers and its core ledger.
const (
	PathLedger     = "/v1/ledger"
	PathContainers = "/v1/containers"
	// PathContainer is followed by the container's name.
	PathContainer = "/v1/containers/"
	// QueryRetire=1 on a DELETE of PathContainer has the replica leave its
	// networks and stop gracefully before it is removed (a rolling update).
	QueryRetire = "retire"
	// PromoteSuffix follows PathContainer + name: a successor's promotion.
	PromoteSuffix = "/promote"
	// ResizeSuffix follows PathContainer + name.
	ResizeSuffix = "/resize"
	// PathFence: a node that was declared dead and is back removes the
	// containers relocated away from it (FenceRequest, FenceResult).
	PathFence = "/v1/fence"
)

// FenceRequest names the containers of a node that run elsewhere now.
type FenceRequest struct {
	Containers []string `json:"containers"`
}

// FenceResult is what the node removed.
type FenceResult struct {
	Removed []string `json:"removed"`
}

// CreateRequest asks an agent to create and start one replica of a service
// on its node, with its cores taken from the node's ledger atomically.
type CreateRequest struct {
	Name    string       `json:"name"`
	Replica int          `json:"replica"`
	Network string       `json:"network"`
	Service spec.Service `json:"service"`
	// Files are the contents of the service's secrets and configs (create
	// reads them on the CLI's machine); without them, the agent takes them
	// from another replica of the service on its node.
	Files []FileContent `json:"files,omitempty"`
	// Copies are the contents of the service's spec.Copies: each a tar
	// whose one top entry is its target's base name, made on the CLI's
	// machine and copied into the container before it starts.
	Copies []CopyContent `json:"copies,omitempty"`
	// Successor, when set, makes this container the successor of that
	// replica (a start-first update): made under Name, it answers to no
	// name of the service until it is promoted (PromoteRequest), once the
	// replica is gone.
	Successor string `json:"successor,omitempty"`
}

// PromoteRequest asks a successor to take its replica's name and the
// service's names (PromoteSuffix), once the replica is gone from its node.
type PromoteRequest struct{}

// CopyContent is one spec.Copy's content.
type CopyContent struct {
	Target string `json:"target"`
	Tar    []byte `json:"tar"`
}

// ResizeRequest changes a container's limits in place; nil fields stay.
type ResizeRequest struct {
	Cores      *int    `json:"cores,omitempty"`
	Cpuset     *string `json:"cpuset,omitempty"`
	Memory     *int64  `json:"memory,omitempty"`
	MemorySwap *int64  `json:"memorySwap,omitempty"`
}

// FleetContainer is a fleet container on a node.
type FleetContainer struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Service string `json:"service"`
	Replica int    `json:"replica"`
	Node    string `json:"node"`
	Image   string `json:"image"`
	State   string `json:"state"`
	// Cpuset is the container's cpuset; Exclusive says whether the fleet
	// holds those cores for it alone.
	Cpuset     string `json:"cpuset,omitempty"`
	Exclusive  bool   `json:"exclusive"`
	Memory     int64  `json:"memory,omitempty"`
	MemorySwap int64  `json:"memorySwap,omitempty"`
	IP         string `json:"ip,omitempty"`
	Pid        int    `json:"pid,omitempty"`
	StartedAt  string `json:"startedAt,omitempty"`
	// Health is the engine's health status (starting, healthy,
	// unhealthy), empty for a container with no healthcheck.
	Health string `json:"health,omitempty"`
	// Restart is its restart policy, as docker's --restart writes it.
	Restart string `json:"restart,omitempty"`
	// Revision is the revision of its service's definition it was made
	// from (spec.Service.Revision; 0 before the first update).
	Revision int `json:"revision,omitempty"`
	// ExitCode is the code it exited with, set only when it is exited or
	// dead; nil then too from an agent older than this field, which sends
	// none, so nil is "unknown", never success.
	ExitCode *int `json:"exitCode,omitempty"`
	// CPU is the cores it used over the last few seconds, from its
	// cgroup (0 from an agent before this field): what rebalance weighs
	// nodes by.
	CPU float64 `json:"cpu,omitempty"`
	// Checkpoint is where its background checkpoints stand (nil: its
	// service has none, --checkpoint-every).
	Checkpoint *CheckpointStatus `json:"checkpoint,omitempty"`
}

// Hold is one core of the ledger and who holds it.
type Hold struct {
	Core      int    `json:"core"`
	Container string `json:"container"`
	// Fleet is false for a container pinned outside the fleet.
	Fleet bool `json:"fleet"`
}

// Ledger is a node's cores and memory, and who holds them.
type Ledger struct {
	Node string `json:"node"`
	// Cores are the node's core numbers; Held those taken.
	Cores       []int            `json:"cores"`
	Held        []Hold           `json:"held"`
	MemTotal    int64            `json:"memTotal"`
	MemReserved int64            `json:"memReserved"`
	Containers  []FleetContainer `json:"containers"`
	// Standbys are the checkpoints this node holds whole for other nodes'
	// containers (warm relocation).
	Standbys []StandbyCopy `json:"standbys,omitempty"`
	// Ports are the fixed host ports the node's containers publish, fleet
	// or not: a replica that publishes one of them cannot go there.
	// Agents before this field report none.
	Ports []HostPort `json:"ports,omitempty"`
}

// MinSharedCores is how many of a node's cores no container may hold
// exclusively: the shared pool that every container without exclusive cores
// (fleet or not) runs on, as in Kubernetes' static CPU manager.
const MinSharedCores = 1

// ExclusiveRoom is how many more of a node's cores may be held
// exclusively while held already are: all the others but MinSharedCores.
// The agent's ledger, the scheduler and the fakes all ask it.
func ExclusiveRoom(cores, held cpuset.Set) int {
	return max(len(cores.Minus(held))-MinSharedCores, 0)
}

// SharedPool is the node's shared pool: its cores that no fleet container
// holds exclusively. A core pinned by hand outside the fleet stays in it
// (its container shares it), though the fleet gives it to nobody.
func (l Ledger) SharedPool() cpuset.Set {
	var held []int
	for _, h := range l.Held {
		if h.Fleet {
			held = append(held, h.Core)
		}
	}
	return cpuset.Of(l.Cores...).Minus(cpuset.Of(held...))
}

// HostPort is a fixed host port a container publishes: 8080/tcp and
// 8080/udp are two.
type HostPort struct {
	Port     uint16 `json:"port"`
	Protocol string `json:"protocol"`
	// Container holds it (for a network holder, the container whose
	// namespace it carries).
	Container string `json:"container,omitempty"`
}

// String is the port as docker writes it: "8080/tcp".
func (p HostPort) String() string { return strconv.Itoa(int(p.Port)) + "/" + p.Protocol }

// ContainerDetail is a fleet container with its current usage.
type ContainerDetail struct {
	FleetContainer
	MemoryUsage int64       `json:"memoryUsage"`
	CPUPercent  float64     `json:"cpuPercent"`
	Networks    []Interface `json:"networks"`
	Aliases     []string    `json:"aliases,omitempty"`
}
