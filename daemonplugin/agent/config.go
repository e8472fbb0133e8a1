// Package agent is the node agent: the mutual-TLS API the CLI and peer
// agents call, and the engine hooks it serves as a managed plugin.
package agent

import (
	"encoding/base64"
	"fmt"
	"os"
	"strconv"

	"github.com/docker-fleet/fleet/shared/api"
)

// Config is the agent's settings, from the plugin's environment.
type Config struct {
	Node string
	Port int
	// CA is the fleet CA certificate; empty until init sets it, and without
	// it the agent opens no TCP port at all.
	CA []byte
	// EnrollToken authenticates the node's first certificate request.
	EnrollToken []byte
	// StateDir keeps the node's key and certificate: in the plugin's own
	// root filesystem, which no Engine API call reads back.
	StateDir string
	// JournalDir keeps the node's migrations until they end: in the
	// engine's data root, which outlives the plugin (an upgrade replaces
	// its root filesystem).
	JournalDir string
	// StandbyDir keeps the checkpoints of other nodes' containers this
	// node is the standby of: in the engine's data root, like the journal.
	StandbyDir string
	// FilesDir keeps the secrets and configs of the node's containers: in
	// the engine's data root too, at DATA_ROOT/fleet/secrets, where the
	// engine finds them to mount (workloads.Manager.FilesDir).
	FilesDir string
	// LogsDir keeps the logs of containers that migrated away from the
	// node (logstore): in the engine's data root too, beside the journal.
	LogsDir string
	// PoolFile keeps the cpusets the shared pool narrowed (pool.Pool.File):
	// in the engine's data root too.
	PoolFile string
	// GuardDir keeps the guard's wish and the engine configuration as it
	// was before the guard (guard.Guard): in the engine's data root too.
	GuardDir string
	// EngineHost is the node engine's API, through the plugin's "sock" mount.
	EngineHost string
	// Proc is the host's procfs (the plugin shares the host's pid namespace).
	Proc string
	// CRIUPath is the launcher that runs the host's criu (see hostexec).
	CRIUPath string
	// AuthzSocket is the plugin socket name the engine connects to.
	AuthzSocket string
	// Pprof serves Go's profiles on a unix socket (servePprof).
	Pprof bool
}

// Where the guard's state is, and the plugin socket's name, before the
// settings are read (GuardWanted).
const (
	defaultGuardDir    = "/host/data-root/fleet/guard"
	defaultAuthzSocket = "fleet"
)

// ConfigFromEnv reads the settings init made with `docker plugin set`.
func ConfigFromEnv() (Config, error) {
	cfg := Config{
		Node:        os.Getenv(api.EnvNode),
		Port:        api.DefaultPort,
		StateDir:    "/state",
		JournalDir:  "/host/data-root/fleet/migrations",
		StandbyDir:  "/host/data-root/fleet/standby",
		FilesDir:    "/host/data-root/fleet/secrets",
		LogsDir:     "/host/data-root/fleet/logs",
		PoolFile:    "/host/data-root/fleet/pool.json",
		GuardDir:    defaultGuardDir,
		EngineHost:  "unix:///run/host/docker.sock",
		Proc:        "/proc",
		CRIUPath:    "/bin/criu",
		AuthzSocket: defaultAuthzSocket,
		EnrollToken: []byte(os.Getenv(api.EnvEnrollToken)),
		Pprof:       os.Getenv(envPprof) == "1",
	}
	if p := os.Getenv(api.EnvPort); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return cfg, fmt.Errorf("%s=%q: not a TCP port", api.EnvPort, p)
		}
		cfg.Port = n
	}
	if v := os.Getenv(api.EnvTLSCA); v != "" {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return cfg, fmt.Errorf("%s: not base64: %w", api.EnvTLSCA, err)
		}
		cfg.CA = b
	}
	return cfg, nil
}
