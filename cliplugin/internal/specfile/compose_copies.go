package specfile

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
)

// A bind mount of a path beside the Compose file (in its project's folder)
// never binds the node's path of that name, which is another machine's:
// its content is copied from here into each replica (spec.Copy). A path
// elsewhere is the node's own, as with docker stack deploy.

// besideFile says whether a bind mount's source is in the project's folder,
// and gives it relative to it.
func besideFile(project *types.Project, src string) (string, bool) {
	rel, err := filepath.Rel(project.WorkingDir, src)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
		return "", false
	}
	return rel, true
}

// copyContents reads the content of a service's bind mounts beside the
// Compose file (fromCompose made them its spec.Copies).
func copyContents(c types.ServiceConfig, project *types.Project) ([]api.CopyContent, error) {
	var out []api.CopyContent
	var total int
	for _, v := range c.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		rel, ok := besideFile(project, v.Source)
		if !ok {
			continue
		}
		content, err := copyOf(v, rel)
		if err != nil {
			return nil, err
		}
		if total += len(content.Tar); total > spec.MaxCopyBytes {
			return nil, fmt.Errorf("volumes: the files and folders beside the Compose file take more than %d bytes: use a named volume", spec.MaxCopyBytes)
		}
		out = append(out, content)
	}
	return out, nil
}

// copyOf reads a bind mount's source beside the Compose file into the tar
// a replica is given: its one top entry named as the target's base, a
// missing source an empty folder (docker compose would make one).
func copyOf(v types.ServiceVolumeConfig, rel string) (api.CopyContent, error) {
	c := spec.Copy{Source: "./" + filepath.ToSlash(rel), Target: v.Target}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	top := path.Base(v.Target)
	var size int64
	err := filepath.WalkDir(v.Source, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(v.Source, p)
		h.Name = path.Join(top, filepath.ToSlash(r))
		if d.IsDir() {
			h.Name += "/"
		}
		h.Uname, h.Gname = "", ""
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		if size += info.Size(); size > spec.MaxCopyBytes {
			return fmt.Errorf("more than %d bytes", spec.MaxCopyBytes)
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if os.IsNotExist(err) {
		err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: top + "/", Mode: 0o755})
	}
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		return api.CopyContent{}, fmt.Errorf("volumes: %s:%s: copying it beside the Compose file: %w", c.Source, c.Target, err)
	}
	return api.CopyContent{Target: v.Target, Tar: buf.Bytes()}, nil
}
