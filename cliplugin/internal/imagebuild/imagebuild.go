// Package imagebuild builds a Compose service's image once, with the
// manager's engine, as docker build sends a local context: a tar of the
// directory less what its .dockerignore excludes. The nodes then get the
// image from the manager peer to peer (deploy's bringImages).
package imagebuild

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/jsonmessage"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/docker-fleet/fleet/cliplugin/internal/specfile"
)

// Engine is what a build needs of the manager's engine.
type Engine interface {
	ImageBuild(ctx context.Context, buildContext io.Reader, options client.ImageBuildOptions) (client.ImageBuildResult, error)
	ImageInspect(ctx context.Context, image string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error)
}

// Build builds b with the engine's classic builder (the one engines of
// 20.10 give through the API without a BuildKit session), writing the
// builder's lines to out, and returns the image's ID.
func Build(ctx context.Context, engine Engine, b specfile.Build, out io.Writer) (string, error) {
	if out == nil {
		out = io.Discard
	}
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("building %s for service %s: %w", b.Image, b.Service, err)
	}
	tarball, err := Context(b.Context, b.Dockerfile)
	if err != nil {
		return fail(err)
	}
	defer tarball.Close()
	res, err := engine.ImageBuild(ctx, tarball, client.ImageBuildOptions{
		Tags: []string{b.Image}, Dockerfile: b.Dockerfile, BuildArgs: b.Args, Target: b.Target, Labels: b.Labels,
		NoCache: b.NoCache, PullParent: b.Pull, Remove: true, Version: build.BuilderV1,
	})
	if err != nil {
		return fail(err)
	}
	defer res.Body.Close()
	// The aux message (the image's ID) is not for people; the ID is read
	// from the tag below, which is what the nodes will be asked about.
	if err := jsonmessage.DisplayStream(res.Body, out, jsonmessage.WithAuxCallback(func(jsonstream.Message) {})); err != nil {
		return fail(err)
	}
	img, err := engine.ImageInspect(ctx, b.Image)
	if err != nil {
		return fail(err)
	}
	return img.ID, nil
}

// Context streams dir as a build context: what its .dockerignore excludes
// is left out, but never the Dockerfile or the .dockerignore, which the
// engine reads (and leaves out of the image itself). Links are sent as
// links, not followed; files are owned by root, as docker build sends
// them.
func Context(dir, dockerfile string) (io.ReadCloser, error) {
	patterns, err := readIgnore(dir)
	if err != nil {
		return nil, err
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf(".dockerignore: %w", err)
	}
	keep := map[string]bool{filepath.ToSlash(filepath.Clean(dockerfile)): true, ".dockerignore": true}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeContext(pw, dir, pm, keep)) }()
	return pr, nil
}

func readIgnore(dir string) ([]string, error) {
	f, err := os.Open(filepath.Join(dir, ".dockerignore"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf(".dockerignore: %w", err)
	}
	return patterns, nil
}

func writeContext(w io.Writer, dir string, pm *patternmatcher.PatternMatcher, keep map[string]bool) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !keep[rel] {
			excluded, err := pm.MatchesOrParentMatches(rel)
			if err != nil {
				return err
			}
			if excluded {
				// A directory may hold what a "!" pattern takes back.
				if d.IsDir() && !pm.Exclusions() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		return addEntry(tw, path, rel, d)
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// addEntry writes one directory, regular file or link; other kinds (a
// FIFO would block the read) are not part of a context.
func addEntry(tw *tar.Writer, path, rel string, d fs.DirEntry) error {
	if !d.IsDir() && !d.Type().IsRegular() && d.Type()&fs.ModeSymlink == 0 {
		return nil
	}
	info, err := d.Info()
	if err != nil {
		return err
	}
	var link string
	if d.Type()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(path); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return err
	}
	hdr.Name = rel
	if d.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !d.Type().IsRegular() {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}
