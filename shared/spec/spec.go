// Package spec is a fleet service's definition: what create makes, what the
// fleet stores in the swarm, and what scale creates more of.
package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"

	"github.com/docker-fleet/fleet/shared/cpuset"
)

// Strategies of the scheduler.
const (
	Spread  = "spread"
	Binpack = "binpack"
)

// MinMemory is the engine's smallest memory limit.
const MinMemory = 6 * 1024 * 1024

// Service is a fleet service.
type Service struct {
	Name       string            `json:"name"`
	Image      string            `json:"image"`
	Command    []string          `json:"command,omitempty"`
	Entrypoint []string          `json:"entrypoint,omitempty"`
	Env        []string          `json:"env,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Ports      []Port            `json:"ports,omitempty"`
	Volumes    []Volume          `json:"volumes,omitempty"`
	Replicas   int               `json:"replicas"`
	// Cores is the number of exclusive cores per replica (--cpus).
	Cores int `json:"cores,omitempty"`
	// Cpuset names the exclusive cores per replica (--cpuset-cpus).
	Cpuset     string `json:"cpuset,omitempty"`
	Memory     int64  `json:"memory,omitempty"`
	MemorySwap int64  `json:"memorySwap,omitempty"`
	// Node restricts placement to one node (--node, node.hostname==).
	Node string `json:"node,omitempty"`
	// Constraints are the other placement constraints (--constraint,
	// deploy.placement.constraints: node.labels.disk==ssd, …), every one
	// required (constraints.go).
	Constraints []string `json:"constraints,omitempty"`
	Strategy    string   `json:"strategy,omitempty"`
	// CheckpointEvery, when set, has each replica checkpointed in the
	// background at this interval and kept on a standby node, from which
	// it is restored warm if its node dies (--checkpoint-every).
	CheckpointEvery Duration `json:"checkpointEvery,omitempty"`
	// Project is the Compose project the service belongs to (its file's
	// name:, --project-name, or its folder's name); empty for a service
	// made from flags. Its replicas carry it in a label.
	Project string `json:"project,omitempty"`
	// DependsOn maps each service that create must see ready before it
	// makes this one's replicas to what ready means (DependsStarted,
	// DependsHealthy, DependsCompleted).
	DependsOn map[string]string `json:"dependsOn,omitempty"`
	// Aliases are more names of the replica on the fleet network, besides
	// SERVICE and SERVICE.N (Compose's container_name): for one replica
	// only, or two would answer to the name.
	Aliases []string `json:"aliases,omitempty"`
	// Options are the plain container options (user, capabilities,
	// restart policy, healthcheck, …).
	Options
	// Attachments are its extra networks, secrets and configs.
	Attachments
	// Copies are files and folders beside its Compose file, copied into
	// each replica (copies.go).
	Copies []Copy `json:"copies,omitempty"`
	// Revision counts the definition's updates (docker fleet update); each
	// replica carries the revision it was made from, so an interrupted
	// update knows which replicas it has yet to replace.
	Revision int `json:"revision,omitempty"`
	// UpdateConfig is how its updates roll unless told otherwise.
	UpdateConfig *UpdateConfig `json:"updateConfig,omitempty"`
}

// Checkpoint intervals the fleet takes: a checkpoint freezes the replica
// for a moment and sends its whole memory, so more often than every few
// seconds would cost more than it keeps.
const (
	MinCheckpointEvery = 5 * time.Second
	MaxCheckpointEvery = 24 * time.Hour
)

// Duration is a time.Duration stored as Go writes it ("30s").
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ParseCheckpointEvery reads a checkpoint interval ("30s", "2m"); field
// names the flag or key in errors.
func ParseCheckpointEvery(field, v string) (Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fieldErr(field, "%q is not a duration (examples: 30s, 2m)", v)
	}
	return Duration(d), nil
}

// Port is a published port.
type Port struct {
	Host      uint16 `json:"host,omitempty"` // 0: the engine picks
	Container uint16 `json:"container"`
	Protocol  string `json:"protocol"`
}

// Volume is a named volume or a host path mounted into the container.
type Volume struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly,omitempty"`
	// External marks a volume Compose declares external: made and
	// removed outside the project, so down -v leaves it.
	External bool `json:"external,omitempty"`
}

func (v Volume) String() string {
	s := v.Source + ":" + v.Target
	if v.Anonymous() {
		s = v.Target
	}
	if v.ReadOnly {
		s += ":ro"
	}
	return s
}

func (p Port) String() string {
	s := strconv.Itoa(int(p.Container)) + "/" + p.Protocol
	if p.Host != 0 {
		s = strconv.Itoa(int(p.Host)) + ":" + s
	}
	return s
}

var (
	// A service's name goes into swarm config names ("docker-fleet-history."
	// + "NAME.REPLICA"), which swarm allows up to 64 characters, ending in a
	// letter or digit: refused here, in our words, rather than by swarm.
	serviceName = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9_-]{0,36}[a-zA-Z0-9])?$`)
	volumeName  = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	// A project's name as compose-go normalizes it; an alias as Compose
	// takes a container_name.
	projectName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	aliasName   = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
)

// Validate checks the definition: its error joins a FieldError for each
// fault, whose text starts with the field ("memory: …").
func (s *Service) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fieldErr(field, format, args...))
	}
	if !serviceName.MatchString(s.Name) {
		bad("name", "%q is not a valid service name (letters, digits, '_' and '-', starting and ending with a letter or digit, at most 38 characters)", s.Name)
	}
	if strings.TrimSpace(s.Image) == "" {
		bad("image", "missing")
	}
	s.validateResources(bad)
	for _, c := range s.Constraints {
		if _, err := ParseConstraint(c); err != nil {
			bad(ConstraintsField, "%v", err)
		}
	}
	switch s.Strategy {
	case "", Spread, Binpack:
	default:
		bad("strategy", "%q: use spread or binpack", s.Strategy)
	}
	for _, v := range s.Volumes {
		if err := v.validate(); err != nil {
			bad("volumes", "%v", err)
		}
	}
	if s.Project != "" && !projectName.MatchString(s.Project) {
		bad("project", "%q is not a project name (lowercase letters, digits, '_' and '-', starting with a letter or digit)", s.Project)
	}
	errs = append(errs, s.validateDependsOn()...)
	for _, a := range s.Aliases {
		if !aliasName.MatchString(a) {
			bad("aliases", "%q is not a container name (letters, digits, '_', '.' and '-', starting with a letter or digit)", a)
		}
	}
	if len(s.Aliases) > 0 && s.Replicas > 1 {
		bad("aliases", "only for a service of one replica, and it has %d: two replicas would answer to one name", s.Replicas)
	}
	errs = append(errs, s.Options.validate()...)
	errs = append(errs, s.UpdateConfig.validate()...)
	errs = append(errs, s.validateHostNetwork()...)
	errs = append(errs, checkCopies(s.Copies, s.ReadOnly)...)
	errs = append(errs, s.validateAttachments()...)
	for _, e := range s.Env {
		if k, _, _ := strings.Cut(e, "="); k == "" {
			bad("environment", "%q has no variable name", e)
		}
	}
	return errors.Join(errs...)
}

// validateResources is Validate's phase for the service's size: replicas,
// cores or cpuset, memory and swap, and the checkpoint period.
func (s *Service) validateResources(bad func(field, format string, args ...any)) {
	if s.Replicas < 0 || s.Replicas > 1000 {
		bad("replicas", "%d is out of range (0 to 1000)", s.Replicas)
	}
	if s.Cores < 0 || s.Cores > cpuset.MaxCPU {
		bad("cpus", "%d is not a number of cores", s.Cores)
	}
	if s.Cpuset != "" {
		if s.Cores != 0 {
			bad("cpus", "give either a number of cores or a cpuset, not both")
		}
		if set, err := cpuset.Parse(s.Cpuset); err != nil {
			bad("cpuset-cpus", "%v", err)
		} else if len(set) == 0 {
			bad("cpuset-cpus", "empty")
		}
	}
	if s.Memory != 0 && s.Memory < MinMemory {
		bad("memory", "%s is below the engine's minimum of 6MiB", units.BytesSize(float64(s.Memory)))
	}
	if s.MemorySwap != 0 && s.MemorySwap != -1 {
		if s.Memory == 0 {
			bad("memory-swap", "needs a memory limit")
		} else if s.MemorySwap < s.Memory {
			bad("memory-swap", "must be at least the memory limit (or -1 for unlimited)")
		}
	}
	if d := time.Duration(s.CheckpointEvery); d != 0 && (d < MinCheckpointEvery || d > MaxCheckpointEvery) {
		bad("checkpoint-every", "%s is out of range (%s to %s, or none)", d, MinCheckpointEvery, MaxCheckpointEvery)
	}
}

// validateHostNetwork refuses what a replica on its node's own network
// (network_mode: host) cannot have. Its aliases and the service's name
// are no error, as with docker compose: they name nothing there.
func (s *Service) validateHostNetwork() []error {
	if s.NetworkMode != HostNetwork {
		return nil
	}
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fieldErr(field, format, args...))
	}
	const host = "with network_mode: host"
	if len(s.Ports) > 0 {
		bad("ports", "%s the container listens on its node's ports directly: publish none (expose, or nothing)", host)
	}
	if len(s.Networks) > 0 {
		bad("networks", "%s the replica is on its node's network alone and joins no other", host)
	}
	if s.Hostname != "" {
		bad("hostname", "%s the replica has its node's hostname: docker refuses another", host)
	}
	if s.CheckpointEvery != 0 {
		bad("checkpoint-every", "%s a replica cannot be checkpointed for another node: its network is its host's, which does not move", host)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Sysctls)) {
		if strings.HasPrefix(k, "net.") {
			bad("sysctls", "%s: %s the network namespace is the node's own, which a container may not change (docker refuses it)", k, host)
		}
	}
	return errs
}

// Anonymous says the volume has no name: the engine makes one for each
// container (Compose's "- /path").
func (v Volume) Anonymous() bool { return v.Source == "" }

func (v Volume) validate() error {
	switch {
	case !path.IsAbs(v.Target):
		return fmt.Errorf("%q: the target must be an absolute path", v.String())
	case path.IsAbs(v.Source), v.Anonymous():
		return nil
	case !volumeName.MatchString(v.Source):
		return fmt.Errorf("%q: %q is neither a volume name nor an absolute host path", v.String(), v.Source)
	}
	return nil
}

// ParseMemorySwap is ParseMemory that also takes -1, for unlimited swap.
func ParseMemorySwap(field, v string) (int64, error) {
	if v == "-1" {
		return -1, nil
	}
	return ParseMemory(field, v)
}

// ParseMemory reads a size such as "64m" or "1g" (binary units, as docker's
// --memory); field names the flag or key in errors.
func ParseMemory(field, v string) (int64, error) {
	n, err := units.RAMInBytes(v)
	if err != nil || n <= 0 {
		return 0, fieldErr(field, "%q is not a size (examples: 64m, 1g)", v)
	}
	return n, nil
}

// ParsePort reads docker's -p forms: "8080" (the engine picks the host
// port), "80:8080", "80:8080/udp".
func ParsePort(v string) (Port, error) {
	p := Port{Protocol: "tcp"}
	rest, proto, hasProto := strings.Cut(v, "/")
	if hasProto {
		if proto != "tcp" && proto != "udp" {
			return p, fieldErr("ports", "%q: protocol must be tcp or udp", v)
		}
		p.Protocol = proto
	}
	host, ctr, hasHost := strings.Cut(rest, ":")
	if !hasHost {
		host, ctr = "", rest
	}
	c, err := portNumber(ctr)
	if err != nil {
		return p, fieldErr("ports", "%q: %w", v, err)
	}
	p.Container = c
	if hasHost {
		if p.Host, err = portNumber(host); err != nil {
			return p, fieldErr("ports", "%q: %w", v, err)
		}
	}
	return p, nil
}

func portNumber(s string) (uint16, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	return uint16(n), nil
}

// ParseVolume reads docker's -v form "SOURCE:/target[:ro|:rw]".
func ParseVolume(v string) (Volume, error) {
	parts := strings.Split(v, ":")
	var vol Volume
	switch {
	case len(parts) == 2:
	case len(parts) == 3 && (parts[2] == "ro" || parts[2] == "rw"):
		vol.ReadOnly = parts[2] == "ro"
	default:
		return vol, fieldErr("volumes", "%q: use SOURCE:/path[:ro]", v)
	}
	vol.Source, vol.Target = parts[0], parts[1]
	if err := vol.validate(); err != nil {
		return vol, &FieldError{Field: "volumes", Err: err}
	}
	return vol, nil
}
