package dial

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
)

// Transport is how the CLI on this machine reaches a fleet's agents.
type Transport string

const (
	// ViaRelay goes through the manager's Docker API and the fleet's relay:
	// it needs nothing but what the docker context already reaches.
	ViaRelay Transport = "relay"
	// Direct dials each agent's TCP port: faster, where those ports are open
	// to this machine.
	Direct Transport = "direct"
)

// contextName is what docker allows as a context name, checked again here
// because it becomes a file name.
var contextName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.+-]*$`)

// settings is what is remembered per docker context.
type settings struct {
	Transport Transport `json:"transport"`
}

// settingsFile is $DOCKER_CONFIG/fleet/contexts/CONTEXT.json.
func settingsFile(configDir, context string) (string, error) {
	if !contextName.MatchString(context) {
		return "", fmt.Errorf("docker context %q: not a name the fleet can keep settings for", context)
	}
	return filepath.Join(configDir, "fleet", "contexts", context+".json"), nil
}

// LoadTransport returns the transport chosen for a docker context, the relay
// if none was: it never makes a user wait on a filtered port.
func LoadTransport(configDir, context string) (Transport, error) {
	path, err := settingsFile(configDir, context)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ViaRelay, nil
	}
	if err != nil {
		return "", err
	}
	var s settings
	if err := json.Unmarshal(b, &s); err != nil {
		return "", fmt.Errorf("%s: %w (remove it, or run a command with --direct or --direct=false)", path, err)
	}
	switch s.Transport {
	case ViaRelay, Direct:
		return s.Transport, nil
	}
	return "", fmt.Errorf("%s: transport %q: want %q or %q", path, s.Transport, ViaRelay, Direct)
}

// SaveTransport remembers the transport for a docker context.
func SaveTransport(configDir, context string, t Transport) error {
	path, err := settingsFile(configDir, context)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(settings{Transport: t})
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
