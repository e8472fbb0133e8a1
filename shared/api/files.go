package api

import (
	"fmt"

	"github.com/docker-fleet/fleet/shared/spec"
)

// FileContent is the content of one of a service's secrets or configs, as
// the CLI read it on its machine. It travels only to the agents, inside
// their mutual TLS (CreateRequest.Files, a migration's ReceiveHeader.Files),
// and is kept only on the nodes, under the engine's data root where the
// agent alone reads it: never in the swarm, a label, the environment or a
// log.
type FileContent struct {
	Kind    string `json:"kind"` // spec.SecretFile or spec.ConfigFile
	Name    string `json:"name"`
	Content []byte `json:"content"`
}

// File is one secret or config file of a container, with its content:
// what a migration's twin is given to mount at the same target.
type File struct {
	spec.ServiceFile
	Content []byte `json:"content"`
}

// CheckFiles refuses what a node must not write for a container: more
// files or bytes than spec.MaxFiles and spec.MaxFilesBytes, a name that
// would leave the container's directory, a target where such a file may
// not go, two files at one target.
func CheckFiles(files []File) error {
	if len(files) > spec.MaxFiles {
		return fmt.Errorf("%d secrets and configs: at most %d", len(files), spec.MaxFiles)
	}
	var total int
	targets := map[string]bool{}
	for _, f := range files {
		if err := f.Check(f.Kind); err != nil {
			return err
		}
		if targets[f.Target] {
			return fmt.Errorf("two secrets or configs at %s", f.Target)
		}
		targets[f.Target] = true
		total += len(f.Content)
	}
	if total > spec.MaxFilesBytes {
		return fmt.Errorf("secrets and configs of %d bytes: at most %d together", total, spec.MaxFilesBytes)
	}
	return nil
}
