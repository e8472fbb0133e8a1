package spec

import (
	"fmt"
	"maps"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Attachments are what a service's replicas join and mount besides the
// fleet network and their volumes (Compose's networks:, secrets: and
// configs:). The definition names the secrets and configs and where they
// go, never their content: that reaches the agents alone
// (api.CreateRequest.Files).
type Attachments struct {
	// Networks are attachable overlay networks of the swarm that the
	// replicas join besides the fleet network, which stays their primary
	// one (their address in the fleet, and what a migration fences).
	Networks []NetworkAttachment `json:"networks,omitempty"`
	// Secrets and Configs are files mounted read-only into each replica.
	Secrets []FileMount `json:"secrets,omitempty"`
	Configs []FileMount `json:"configs,omitempty"`
}

// NetworkAttachment is one extra network of a service. Its replicas answer
// there to the service's name, their own (SERVICE.N) and Aliases.
type NetworkAttachment struct {
	Name    string   `json:"name"`
	Aliases []string `json:"aliases,omitempty"`
}

// Network is a network a Compose file declares and a service uses: create
// makes it an attachable overlay network of the swarm, or, External, finds
// it there.
type Network struct {
	// Key is its key in the file (for messages), Name its name in the
	// swarm (PROJECT_KEY as Compose names it, or its name:).
	Key, Name  string
	External   bool
	Internal   bool
	Labels     map[string]string
	DriverOpts map[string]string
	IPAM       []IPAMPool
}

// IPAMPool is one address pool of a network (Compose's ipam.config);
// only Subnet is required.
type IPAMPool struct {
	Subnet, IPRange netip.Prefix
	Gateway         netip.Addr
}

// Kinds of a service's files, as messages name them.
const (
	SecretFile = "secret"
	ConfigFile = "config"
)

// SecretsDir is where secrets are mounted: a secret's target is under it.
const SecretsDir = "/run/secrets"

// Bounds of a replica's secrets and configs: their content travels in one
// request to an agent and in a migration's header.
const (
	MaxFiles      = 32
	MaxFilesBytes = 128 << 10 // all of a replica's files together
)

// FileMount is a secret or config of a service: the file Name of the
// Compose file's top-level secrets: or configs:, mounted read-only at
// Target, owned by UID and GID (empty: root), with permissions Mode.
type FileMount struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	UID    string `json:"uid,omitempty"`
	GID    string `json:"gid,omitempty"`
	Mode   uint32 `json:"mode"`
}

// ServiceFile is one of a service's files, with its kind.
type ServiceFile struct {
	Kind string `json:"kind"` // SecretFile or ConfigFile
	FileMount
}

// Files are the service's secrets, then its configs.
func (a Attachments) Files() []ServiceFile {
	var out []ServiceFile
	for _, f := range a.Secrets {
		out = append(out, ServiceFile{SecretFile, f})
	}
	for _, f := range a.Configs {
		out = append(out, ServiceFile{ConfigFile, f})
	}
	return out
}

var (
	// A secret's or config's name becomes part of a file name on the
	// nodes: no '/', and never "." or "..".
	fileName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)
	// A network's name as docker takes it; an alias as a DNS name.
	networkName  = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)
	networkAlias = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)
)

// Check refuses a file a node could not write safely or mount where a
// file of this kind may go: a secret under /run/secrets, a config at any
// absolute, clean path but /.
func (f FileMount) Check(kind string) error {
	id := strconv.Quote(f.Name)
	switch {
	case kind != SecretFile && kind != ConfigFile:
		return fmt.Errorf("%q is neither a secret nor a config", kind)
	case !fileName.MatchString(f.Name):
		return fmt.Errorf("%s is not a %s name (letters, digits, '_', '.' and '-', starting with a letter or digit, at most 64)", id, kind)
	case !path.IsAbs(f.Target) || path.Clean(f.Target) != f.Target || f.Target == "/":
		return fmt.Errorf("%s %s: target %q is not an absolute, clean path of a file", kind, id, f.Target)
	case kind == SecretFile && !strings.HasPrefix(f.Target, SecretsDir+"/"):
		return fmt.Errorf("%s %s: target %q: secrets are mounted under %s", kind, id, f.Target, SecretsDir)
	case f.Mode > 0o777:
		return fmt.Errorf("%s %s: mode %o: permissions only (at most 0777)", kind, id, f.Mode)
	case !numericID(f.UID) || !numericID(f.GID):
		return fmt.Errorf("%s %s: uid %q, gid %q: numbers", kind, id, f.UID, f.GID)
	}
	return nil
}

func numericID(s string) bool {
	if s == "" {
		return true
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return err == nil && n < 1<<31
}

// validateAttachments checks the networks, secrets and configs, and that
// no two mounts of the replica share a target.
func (s *Service) validateAttachments() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fieldErr(field, format, args...))
	}
	seen := map[string]bool{}
	for _, n := range s.Networks {
		switch {
		case !networkName.MatchString(n.Name):
			bad("networks", "%q is not a network name", n.Name)
		case seen[n.Name]:
			bad("networks", "%s is named twice", n.Name)
		}
		seen[n.Name] = true
		for _, a := range n.Aliases {
			if !networkAlias.MatchString(a) {
				bad("networks", "%s: alias %q is not a name (letters, digits, '_', '.' and '-', starting with a letter or digit)", n.Name, a)
			}
		}
	}
	if n := len(s.Secrets) + len(s.Configs); n > MaxFiles {
		bad("secrets", "%d secrets and configs: at most %d", n, MaxFiles)
	}
	targets := map[string]string{}
	for _, v := range s.Volumes {
		targets[v.Target] = "a volume"
	}
	for _, p := range slices.Sorted(maps.Keys(s.Tmpfs)) {
		targets[p] = "a tmpfs"
	}
	for _, f := range s.Files() {
		if err := f.Check(f.Kind); err != nil {
			bad(f.Kind+"s", "%v", err)
			continue
		}
		if other, ok := targets[f.Target]; ok {
			bad(f.Kind+"s", "%s %s: %s is %s's target too", f.Kind, f.Name, f.Target, other)
		}
		targets[f.Target] = f.Kind + " " + f.Name
	}
	return errs
}
