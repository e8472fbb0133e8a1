package agentinstall

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/plugin"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/pki"
)

// asInstalled is the plugin as the engine reports it after `plugin set args`.
func asInstalled(args []string) plugin.Plugin {
	var p plugin.Plugin
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		if name, ok := strings.CutSuffix(k, ".source"); ok {
			src := v
			p.Settings.Mounts = append(p.Settings.Mounts, plugin.Mount{Name: name, Source: &src})
			continue
		}
		p.Settings.Env = append(p.Settings.Env, a)
	}
	return p
}

func TestSameSettings(t *testing.T) {
	ca, err := pki.NewCA("fleet")
	assert.NilError(t, err)
	s := Settings{Node: "h1", Port: 7477, CA: ca.CertPEM, Socket: "/run/docker.sock", DataRoot: "/var/lib/docker", HostRoot: "/"}
	p := asInstalled(s.args("build1", "token1"))
	assert.Check(t, is.Equal(current(p, envBuild), "build1"))
	assert.Check(t, sameSettings(p, s))

	// The settings hold no private key: only the CA certificate and the
	// enrollment token.
	for _, kv := range p.Settings.Env {
		assert.Check(t, !strings.Contains(kv, "PRIVATE KEY"), kv)
		if v, ok := strings.CutPrefix(kv, api.EnvTLSCA+"="); ok {
			b, err := base64.StdEncoding.DecodeString(v)
			assert.NilError(t, err)
			assert.Check(t, !strings.Contains(string(b), "PRIVATE KEY"))
		}
	}

	other, err := pki.NewCA("other")
	assert.NilError(t, err)
	for name, mutate := range map[string]func(*Settings){
		"CA":        func(s *Settings) { s.CA = other.CertPEM },
		"port":      func(s *Settings) { s.Port = 7478 },
		"node":      func(s *Settings) { s.Node = "h2" },
		"socket":    func(s *Settings) { s.Socket = "/other.sock" },
		"data root": func(s *Settings) { s.DataRoot = "/data" },
	} {
		changed := s
		mutate(&changed)
		assert.Check(t, !sameSettings(p, changed), "a different %s must be reconfigured", name)
	}
}
