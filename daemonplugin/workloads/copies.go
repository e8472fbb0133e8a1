package workloads

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"path"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
)

// copiesFor pairs each of a service's copies with its content in the
// request. Only create -f reads them beside the Compose file: a replica
// made from the stored definition alone (scale, a cold relocation) cannot
// have them, and is refused rather than made without them.
func copiesFor(node string, want []spec.Copy, have []api.CopyContent) ([]api.CopyContent, error) {
	byTarget := map[string]api.CopyContent{}
	var total int
	for _, c := range have {
		byTarget[c.Target] = c
		total += len(c.Tar)
	}
	if total > spec.MaxCopyBytes {
		return nil, Refuse(errdefs.ErrInvalidArgument, "files beside the Compose file of %d bytes: at most %d", total, spec.MaxCopyBytes)
	}
	out := make([]api.CopyContent, 0, len(want))
	for _, w := range want {
		c, ok := byTarget[w.Target]
		if !ok {
			return nil, Refuse(errdefs.ErrFailedPrecondition, "%s (for %s), beside the service's Compose file, is not on node %s: only docker fleet create -f copies it; recreate the service with docker fleet create -f",
				w.Source, w.Target, node)
		}
		out = append(out, c)
	}
	return out, nil
}

// copyIn copies the files beside a Compose file into a container made but
// not started, through the engine's archive API (which keeps them inside
// the container's root): into its own filesystem, which a migration
// carries.
func (m *Manager) copyIn(ctx context.Context, id string, copies []api.CopyContent) error {
	for _, c := range copies {
		// The engine extracts only into a folder that exists: the
		// nearest one there is, and the tar makes the rest (never an
		// entry for a folder the image has, whose owner and mode stay).
		dest, missing := path.Dir(c.Target), []string(nil)
		for dest != "/" {
			_, err := m.Engine.ContainerStatPath(ctx, id, client.ContainerStatPathOptions{Path: dest})
			if err == nil {
				break
			}
			if !errdefs.IsNotFound(err) {
				return err
			}
			missing = append([]string{path.Base(dest)}, missing...)
			dest = path.Dir(dest)
		}
		content, err := underFolders(missing, c.Tar)
		if err != nil {
			return Refuse(errdefs.ErrInvalidArgument, "copying %s into the container: %v", c.Target, err)
		}
		_, err = m.Engine.CopyToContainer(ctx, id, client.CopyToContainerOptions{DestinationPath: dest, Content: content})
		if err != nil {
			return Refuse(errdefs.ErrInvalidArgument, "copying %s into the container: %v", c.Target, err)
		}
	}
	return nil
}

// underFolders is the tar t under the folders dirs (a/b/…), each made
// first.
func underFolders(dirs []string, t []byte) (io.Reader, error) {
	if len(dirs) == 0 {
		return bytes.NewReader(t), nil
	}
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	prefix := ""
	for _, d := range dirs {
		prefix = path.Join(prefix, d)
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: prefix + "/", Mode: 0o755}); err != nil {
			return nil, err
		}
	}
	tr := tar.NewReader(bytes.NewReader(t))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		h.Name = path.Join(prefix, h.Name)
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return nil, err
		}
	}
	return &out, tw.Close()
}
