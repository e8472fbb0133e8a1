// Package api is the wire protocol between the CLI and the agents (and
// between agents): the HTTP paths the agent serves over mutual TLS and the
// JSON documents it returns.
package api

import "time"

// DefaultPort is the agent's TCP port unless init is told otherwise.
const DefaultPort = 7477

// Paths served by the agent.
const (
	PathInfo    = "/v1/info"
	PathMetrics = "/v1/metrics"
)

// Plugin settings (environment of the managed plugin) that init sets.
const (
	EnvPort  = "FLEET_PORT"
	EnvNode  = "FLEET_NODE"
	EnvTLSCA = "FLEET_TLS_CA"
	// EnvEnrollToken authenticates the agent's first certificate request
	// to init (see CSRResponse). The node's private key is made on the node
	// and is in no setting.
	EnvEnrollToken = "FLEET_ENROLL_TOKEN"
)

// Mount names of the managed plugin whose sources init sets per engine.
const (
	MountSocket   = "sock"
	MountDataRoot = "root"
	MountHostRoot = "hostfs"
)

// MinCRIU is the oldest CRIU that migrates on the kernels we support
// (3.17 fails on the vDSO, 4.1 on any TCP socket).
const (
	MinCRIU       = 40200
	MinCRIUString = "4.2"
)

// Info describes a node: what runs there and whether it can migrate.
type Info struct {
	Node         string     `json:"node"`
	AgentVersion string     `json:"agentVersion"`
	Kernel       string     `json:"kernel"`
	NCPU         int        `json:"ncpu"`
	MemTotal     int64      `json:"memTotal"`
	Engine       EngineInfo `json:"engine"`
	CRIU         CRIUInfo   `json:"criu"`
	Migration    Readiness  `json:"migration"`
	// Capabilities are those CRIU work needs, as the node has them.
	Capabilities Capabilities `json:"capabilities"`
	// CertNotAfter is when the node's certificate expires.
	CertNotAfter time.Time `json:"certNotAfter"`
	// Guard is the node's guard (nil from an agent before it).
	Guard *GuardStatus `json:"guard,omitempty"`
	// APIVersion is the protocol version the agent speaks (the package's
	// APIVersion); agents from before versioning leave it out, so read it
	// with API.
	APIVersion int `json:"apiVersion,omitempty"`
}

// EngineInfo is what the node's Docker engine reports of itself.
type EngineInfo struct {
	Version    string `json:"version"`
	APIVersion string `json:"apiVersion"`
	// Containerd and Runc are the versions of the engine's components, as
	// it reports them; CgroupVersion is "1" or "2".
	Containerd    string `json:"containerd,omitempty"`
	Runc          string `json:"runc,omitempty"`
	CgroupVersion string `json:"cgroupVersion,omitempty"`
	Experimental  bool   `json:"experimental"`
	DataRoot      string `json:"dataRoot"`
	SwarmNodeID   string `json:"swarmNodeID"`
}

// CRIUInfo is the host's CRIU as go-criu found it.
type CRIUInfo struct {
	Version string `json:"version,omitempty"`
	// Error says why CRIU could not be used (not installed, fails to run).
	Error    string       `json:"error,omitempty"`
	Features CRIUFeatures `json:"features"`
	// Patches are the fleet's CRIU patches the host's CRIU was built with
	// (packaging/criu), as the stamp next to the binary records them.
	Patches []string `json:"patches,omitempty"`
}

// CRIUFeatures are the kernel features that decide which migration
// strategies a node supports.
type CRIUFeatures struct {
	// MemTrack (soft-dirty tracking) allows pre-copy.
	MemTrack bool `json:"memTrack"`
	// LazyPages (userfaultfd) allows post-copy.
	LazyPages bool `json:"lazyPages"`
}

// Readiness says whether live migration will work on the node, and if not
// what to do about it.
type Readiness struct {
	Ready    bool     `json:"ready"`
	Problems []string `json:"problems,omitempty"`
	// Limits are what migration cannot do on the node even when it is
	// ready (such as containers of some kind), and why.
	Limits []string `json:"limits,omitempty"`
}

// Metrics are a node's current figures.
type Metrics struct {
	Time       time.Time   `json:"time"`
	Uptime     float64     `json:"uptimeSeconds"`
	CPU        CPU         `json:"cpu"`
	Memory     Memory      `json:"memory"`
	Network    []Interface `json:"network"`
	Containers []Container `json:"containers"`
}

// CPU is usage over the agent's last sampling interval, in percent.
type CPU struct {
	Percent float64 `json:"percent"`
	Cores   []Core  `json:"cores"`
}

// Core is one logical CPU's usage.
type Core struct {
	ID      int     `json:"id"`
	Percent float64 `json:"percent"`
}

// Memory of the host, in bytes.
type Memory struct {
	Total     int64 `json:"total"`
	Used      int64 `json:"used"`
	Available int64 `json:"available"`
}

// Interface is one network interface's counters since boot.
type Interface struct {
	Name      string `json:"name"`
	RxBytes   uint64 `json:"rxBytes"`
	TxBytes   uint64 `json:"txBytes"`
	RxPackets uint64 `json:"rxPackets"`
	TxPackets uint64 `json:"txPackets"`
}

// Container is a container on the node's engine.
type Container struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Image   string `json:"image"`
	State   string `json:"state"`
	Service string `json:"service,omitempty"`
}

// Error is the body of a failed request.
type Error struct {
	Message string `json:"message"`
}
