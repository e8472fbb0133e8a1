// Package agent is the node agent: the mutual-TLS API the CLI and peer
// agents call, and the engine hooks it serves as a managed plugin.
package agent

import (
	"encoding/base64"
	"fmt"
	"os"
	"strconv"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/pki"
)

// Config is the agent's settings, from the plugin's environment.
type Config struct {
	Node string
	Port int
	// TLS is empty until init sets the certificates; without them the agent
	// opens no TCP port at all.
	TLS pki.Pair
	// EngineHost is the node engine's API, through the plugin's "sock" mount.
	EngineHost string
	// Proc is the host's procfs (the plugin shares the host's pid namespace).
	Proc string
	// CRIUPath is the launcher that runs the host's criu (see hostexec).
	CRIUPath string
	// AuthzSocket is the plugin socket name the engine connects to.
	AuthzSocket string
}

// ConfigFromEnv reads the settings init made with `docker plugin set`.
func ConfigFromEnv() (Config, error) {
	cfg := Config{
		Node:        os.Getenv(api.EnvNode),
		Port:        api.DefaultPort,
		EngineHost:  "unix:///run/host/docker.sock",
		Proc:        "/proc",
		CRIUPath:    "/bin/criu",
		AuthzSocket: "fleet",
	}
	if p := os.Getenv(api.EnvPort); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return cfg, fmt.Errorf("%s=%q: not a TCP port", api.EnvPort, p)
		}
		cfg.Port = n
	}
	for _, s := range []struct {
		env string
		dst *[]byte
	}{{api.EnvTLSCA, &cfg.TLS.CA}, {api.EnvTLSCert, &cfg.TLS.Cert}, {api.EnvTLSKey, &cfg.TLS.Key}} {
		v := os.Getenv(s.env)
		if v == "" {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return cfg, fmt.Errorf("%s: not base64: %w", s.env, err)
		}
		*s.dst = b
	}
	return cfg, nil
}

// HasTLS reports whether all three certificate settings are present.
func (c Config) HasTLS() bool {
	return len(c.TLS.CA) > 0 && len(c.TLS.Cert) > 0 && len(c.TLS.Key) > 0
}
