package spec

import "path"

// Copy is a file or folder beside a Compose file that a service bind-mounts
// (`./nginx.conf:/etc/nginx/nginx.conf`): its content is copied from the
// client into each replica at Target (into the container's own filesystem,
// which moves with it), never bound from a node's path of the same name.
// The stored definition keeps where it came from, not the content, which
// only `create -f` has.
type Copy struct {
	// Source is the path as the file gives it, relative to the project.
	Source string `json:"source"`
	Target string `json:"target"`
}

// Bounds of what a replica is given by copies: the create request carries
// the content.
const (
	MaxCopies    = 64
	MaxCopyBytes = 8 << 20
)

func checkCopies(cs []Copy, readOnly bool) []error {
	var errs []error
	if len(cs) > 0 && readOnly {
		errs = append(errs, fieldErr("volumes", "%s: a file beside the Compose file is copied into the container's own filesystem, which read_only forbids: use a named volume, or drop read_only", cs[0].Source))
	}
	if len(cs) > MaxCopies {
		errs = append(errs, fieldErr("volumes", "%d files or folders beside the Compose file: at most %d", len(cs), MaxCopies))
	}
	for _, c := range cs {
		if !path.IsAbs(c.Target) || path.Clean(c.Target) != c.Target || c.Target == "/" {
			errs = append(errs, fieldErr("volumes", "%s:%s: the target must be an absolute, clean path other than /", c.Source, c.Target))
		}
	}
	return errs
}
