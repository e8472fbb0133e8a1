package images

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// maxManifest bounds the manifest.json of a streamed image.
const maxManifest = 1 << 20

// OnlyTag passes a `docker save` stream through, keeping of its tags only
// keep (the image of the container being migrated): a source cannot retag
// any other image on the destination, such as the fleet's own.
func OnlyTag(r io.Reader, keep string) io.Reader {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(rewriteSave(tar.NewReader(r), tar.NewWriter(pw), keep)) }()
	return pr
}

func rewriteSave(tr *tar.Reader, tw *tar.Writer, keep string) error {
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return tw.Close()
		}
		if err != nil {
			return err
		}
		switch hdr.Name {
		case "repositories":
			continue // the legacy tag list: manifest.json says the same
		case "manifest.json":
			b, err := io.ReadAll(io.LimitReader(tr, maxManifest+1))
			if err != nil {
				return err
			}
			if len(b) > maxManifest {
				return fmt.Errorf("image manifest larger than %d bytes", maxManifest)
			}
			if b, err = keepTag(b, keep); err != nil {
				return err
			}
			hdr.Size = int64(len(b))
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if _, err := tw.Write(b); err != nil {
				return err
			}
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

// keepTag rewrites manifest.json so that only keep is tagged.
func keepTag(b []byte, keep string) ([]byte, error) {
	var entries []map[string]any
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("image manifest: %w", err)
	}
	for _, e := range entries {
		tags, _ := e["RepoTags"].([]any)
		e["RepoTags"] = slices.DeleteFunc(tags, func(t any) bool {
			s, _ := t.(string)
			return s != keep || FleetOwn(s)
		})
	}
	return json.Marshal(entries)
}

// fleetImages prefixes the images the fleet makes itself (the anchor):
// never taken from a peer.
const fleetImages = "docker-fleet/"

// FleetOwn says whether ref names an image the fleet makes itself, which
// no peer may name.
func FleetOwn(ref string) bool { return strings.HasPrefix(ref, fleetImages) }
