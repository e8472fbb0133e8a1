// Package packaging carries the agent's managed-plugin tarball inside the CLI
// plugin, so that init installs the agent on any engine without a registry.
package packaging

import (
	"bytes"
	"compress/gzip"
	"embed"
	"errors"
	"io"
	"io/fs"
)

//go:embed dist
var dist embed.FS

const pluginTar = "dist/fleet-agent-plugin.tar.gz"

// ErrNoAgent means the binary was built without running packaging first.
var ErrNoAgent = errors.New("this docker-fleet was built without the agent plugin: build it with `make build`")

// AgentPluginGz returns the gzipped plugin tarball (config.json + rootfs/).
func AgentPluginGz() ([]byte, error) {
	b, err := dist.ReadFile(pluginTar)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoAgent
	}
	return b, err
}

// Uncompress opens a gzipped tarball for the Engine API, which takes it plain.
func Uncompress(gz []byte) (io.Reader, error) {
	return gzip.NewReader(bytes.NewReader(gz))
}
