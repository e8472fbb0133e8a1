package migrate

import (
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/stats"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/daemonplugin/journal"
	"github.com/docker-fleet/fleet/daemonplugin/logstore"
	"github.com/docker-fleet/fleet/daemonplugin/netqueue"
	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/agentclient"
	"github.com/docker-fleet/fleet/shared/api"
)

// checkpointName is the engine checkpoint a migration makes and restores.
const checkpointName = "fleet-migration"

// MaxTransfer bounds what a destination accepts in one migration.
var MaxTransfer int64 = 64 << 30

// Migrator is a node's side of migrations, as source and as destination.
// The protocol (README: "The migration protocol") has a source that alone
// decides, a destination whose restored copy runs fenced (its network
// locked) until it learns the decision, and a journal on each side from
// which a restarted agent finishes or undoes what it was doing (recover.go).
type Migrator struct {
	Node      string
	Engine    client.APIClient
	Workloads *workloads.Manager
	// Creds are the node's identity, which it shows to peer agents.
	Creds agentclient.Credentials
	// HostRoot is where the host's root filesystem is mounted: engine
	// paths (writable layers, checkpoints, volumes) are read and written
	// through it.
	HostRoot string
	// Journal keeps this node's migrations until they are finished.
	Journal *journal.Journal
	// Logs keeps the log of a container that migrated away, which its
	// engine removes with it (nil: not kept).
	Logs *logstore.Store
	// ForeignLimits reports whether this node's CRIU can read the resource
	// limits of another user's process (CAP_SYS_RESOURCE, or the fleet's
	// CRIU build); nil means it can.
	ForeignLimits func() bool

	// Standby keeps the checkpoints of other nodes' containers that this
	// node is the standby of (warm relocation); its Dir is set at start.
	Standby standbyStore
	// bg are this node's containers' background checkpoints.
	bg checkpoints

	// one migration at a time on this host: the CRIU configuration is the
	// host's, and a second freeze would only slow the first.
	mu sync.Mutex

	// expected are the migrations operators announced to this node as
	// destination, by id.
	expMu    sync.Mutex
	expected map[string]*expected
	// reserves expire the tmpfs room prepares took (reserve.go).
	reserves map[string]*time.Timer

	// holds are the queues of fenced copies' packets (hold.go), by
	// migration id.
	holdMu sync.Mutex
	holds  map[string]*netqueue.Queue

	// resolveMu orders the journal's transitions between the request that
	// drives a migration, the peer's decision or question, and recovery.
	// It is never held while a peer is asked or another lock is taken.
	resolveMu sync.Mutex
	// active are the migrations a live request drives (id → container):
	// recovery leaves them alone. activeMu guards it alone.
	activeMu sync.Mutex
	active   map[string]string
	// drainUntil: no new migration starts before it (Drain);
	// checkpointing names a background checkpoint being taken. Both
	// under activeMu.
	drainUntil    time.Time
	checkpointing string
}

func (m *Migrator) host(p string) string { return filepath.Join(m.HostRoot, p) }

// workDir is a host directory of migration id on this node, in tmpfs: its
// CRIU images (suffix ""), the dump's work files ("-work") or the images
// received ("-in"). Simulated hosts share one tmpfs: the node is in the name.
func (m *Migrator) workDir(id, suffix string) string {
	return filepath.Join(shmDir, "fleet-"+safeName(m.Node)+"-"+id+suffix)
}

// Peer is a client of node's agent at addr (HOST:PORT), as this node.
func (m *Migrator) Peer(node, addr string) (*agentclient.Client, error) {
	host, port, err := splitAddr(addr)
	if err != nil {
		return nil, err
	}
	return agentclient.New(m.Creds, node, host, port, nil)
}

func dumpStats(dir string) *api.DumpStats {
	f, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer f.Close()
	s, err := stats.CriuGetDumpStats(f)
	if err != nil {
		return nil
	}
	return &api.DumpStats{
		FreezingTime: s.GetFreezingTime(), FrozenTime: s.GetFrozenTime(),
		MemdumpTime: s.GetMemdumpTime(), MemwriteTime: s.GetMemwriteTime(),
		PagesScanned: s.GetPagesScanned(), PagesWritten: s.GetPagesWritten(),
	}
}

func restoreStats(dir string) *api.RestoreStats {
	f, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer f.Close()
	s, err := stats.CriuGetRestoreStats(f)
	if err != nil {
		return nil
	}
	return &api.RestoreStats{ForkingTime: s.GetForkingTime(), RestoreTime: s.GetRestoreTime(), PagesRestored: s.GetPagesRestored()}
}
