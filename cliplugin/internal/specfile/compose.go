package specfile

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
)

// What of a Compose file the fleet does. Anything else that would change
// what runs is refused by name.
var (
	composeTop     = keys("name", "version", "services", "volumes", "networks", "secrets", "configs")
	composeService = keys("image", "command", "entrypoint", "environment", "env_file", "ports", "volumes",
		"cpuset", "mem_limit", "memswap_limit", "deploy", "labels", "x-fleet",
		"networks", "secrets", "configs", // compose_networks.go
		// projects (compose_deps.go, compose_build.go)
		"build", "depends_on", "container_name",
		// the plain container options (spec.Options)
		"restart", "healthcheck", "expose", "cap_add", "cap_drop", "user", "hostname", "working_dir",
		"stop_signal", "stop_grace_period", "stdin_open", "tty", "sysctls", "ulimits", "extra_hosts",
		"init", "tmpfs", "read_only", "shm_size", "logging", "profiles", "platform",
		"dns", "dns_search", "dns_opt", "pids_limit", "security_opt", "pull_policy", "links",
		"network_mode") // host only (options)
	composeDeploy        = keys("replicas", "resources", "placement", "mode", "restart_policy", "update_config")
	composeUpdateConfig  = keys("parallelism", "delay", "monitor", "order", "failure_action", "max_failure_ratio")
	composeResources     = keys("limits")
	composeLimits        = keys("memory", "pids")
	composePlacement     = keys("constraints")
	composeRestartPolicy = keys("condition", "max_attempts")
	composeBuild         = keys("context", "dockerfile", "args", "target", "labels", "no_cache", "pull")
	fleetExtension       = keys("cpus", "checkpoint-every")
)

// Why keys are refused that cannot work across hosts or with
// checkpoint/restore (by their path within a service); a key not here is
// one the fleet has not built yet.
const (
	hostDevices  = "host devices do not exist on every node and cannot be checkpointed"
	noRestartLag = "docker fleet restarts through the engine's restart policy, which has no "
	// network_mode is taken as a key and refused by its value (options).
	hostNetworkOnly = "fleet containers live on the fleet's overlay network; only network_mode: host is taken: the replica then runs on its node's network and cannot migrate"
)

var refusedWhy = map[string]string{
	"pid":                          "a host's or another container's PID namespace cannot move with a migration",
	"ipc":                          "a host's or another container's IPC namespace cannot move with a migration",
	"uts":                          "the host's UTS namespace cannot move with a migration",
	"cgroup":                       "the host's cgroup namespace cannot move with a migration",
	"privileged":                   hostDevices,
	"devices":                      hostDevices,
	"device_cgroup_rules":          hostDevices,
	"gpus":                         hostDevices,
	"runtime":                      "CRIU checkpoint/restore needs runc",
	"userns_mode":                  "user namespace remapping is each engine's own setting, so file owners and IDs would not match on another node",
	"cgroup_parent":                "a parent cgroup is one host's: it may not exist on the node a replica moves to, and its cpuset could conflict with the fleet's exclusive cores",
	"deploy.rollback_config":       "a rollback rolls as the update did (deploy.update_config)",
	"deploy.restart_policy.delay":  noRestartLag + "delay",
	"deploy.restart_policy.window": noRestartLag + "window",
	"build.ssh":                    needsBuildKit,
	"build.secrets":                needsBuildKit,
	"build.cache_from":             needsBuildKit + " (its cache sources are BuildKit's, type=registry,…)",
	"build.cache_to":               needsBuildKit,
	"build.additional_contexts":    needsBuildKit,
	"build.entitlements":           needsBuildKit,
	"build.privileged":             needsBuildKit,
	"build.no_cache_filter":        needsBuildKit,
	"build.provenance":             needsBuildKit,
	"build.sbom":                   needsBuildKit,
	"build.dockerfile_inline":      needsBuildKit,
	"build.platforms":              "replicas run their node engine's own platform (linux/amd64), and the image is built once, on the manager",
}

func keys(k ...string) map[string]bool {
	m := map[string]bool{}
	for _, s := range k {
		m[s] = true
	}
	return m
}

func parseCompose(name string, data []byte, workingDir string, env map[string]string, opts parseOptions) (*Result, error) {
	raw, err := checkComposeKeys(data)
	if err != nil {
		return nil, err
	}
	rawServices, _ := raw["services"].(map[string]any)
	profiled := func(n string) bool { return hasProfiles(rawServices, n) }
	if name == "-" || name == "" {
		name = "compose.yaml"
	}
	// The project is named as docker compose names it: -p, else name: in
	// the file, else the file's folder (compose-go normalizes the last
	// two; a name given explicitly must already be normal).
	folder := loader.NormalizeProjectName(filepath.Base(workingDir))
	if _, named := raw["name"]; opts.project == "" && !named && folder == "" {
		return nil, fmt.Errorf("name: missing, and the folder %q gives no project name: add name: to the file or give --project-name", filepath.Base(workingDir))
	}
	env, err = withDotEnv(env, workingDir)
	if err != nil {
		return nil, err
	}
	// No profile is enabled (as docker compose up without --profile):
	// compose-go leaves out every service that names one.
	project, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  workingDir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(workingDir, filepath.Base(name)), Content: data}},
		Environment: env,
	}, func(o *loader.Options) {
		if opts.project != "" {
			o.SetProjectName(opts.project, true)
		} else {
			o.SetProjectName(folder, false)
		}
		o.SkipConsistencyCheck = true
	})
	if err != nil {
		return nil, err
	}
	r := &Result{Format: Compose, Project: project.Name}
	names := slices.Sorted(maps.Keys(project.Services))
	named := map[string]string{} // container_name → its service
	for _, n := range names {
		if profiled(n) {
			if err := checkService(n, rawServices[n]); err != nil {
				return nil, err
			}
		}
		c := project.Services[n]
		b, err := buildOf(c, project.Name)
		if err != nil {
			return nil, fmt.Errorf("services.%s.%w", n, err)
		}
		if b != nil {
			c.Image = b.Image
			r.Builds = append(r.Builds, *b)
		}
		s, err := fromCompose(c, project)
		if err != nil {
			return nil, fmt.Errorf("services.%s.%w", n, err)
		}
		copies, err := copyContents(c, project)
		if err != nil {
			return nil, fmt.Errorf("services.%s.%w", n, err)
		}
		if len(copies) > 0 {
			if r.Copies == nil {
				r.Copies = map[string][]api.CopyContent{}
			}
			r.Copies[n] = copies
		}
		if err := r.attach(project, c, &s); err != nil {
			return nil, err
		}
		if other, ok := named[c.ContainerName]; ok {
			return nil, fmt.Errorf("services.%s.container_name: %q is services.%s's too", n, c.ContainerName, other)
		} else if c.ContainerName != "" {
			named[c.ContainerName] = n
		}
		if err := s.Validate(); err != nil {
			return nil, composeErrors(c, err)
		}
		r.Services = append(r.Services, s)
	}
	if len(r.Services) == 0 {
		if len(project.DisabledServices) > 0 {
			return nil, fmt.Errorf("services: none defined outside a profile, and docker fleet enables no profile (%s)", needProfiles(project.DisabledServices))
		}
		return nil, fmt.Errorf("services: none defined")
	}
	linkAliases(project, r.Services)
	if _, err := spec.Order(r.Services); err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	return r, nil
}

// checkComposeKeys is parseCompose's first phase: the YAML, its top-level
// keys and attachments, and the keys of each service that names no profiles.
func checkComposeKeys(data []byte) (map[string]any, error) {
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("malformed YAML: %w", err)
	}
	if err := only("", "", raw, composeTop); err != nil {
		return nil, err
	}
	if err := checkAttachments(raw); err != nil {
		return nil, err
	}
	rawServices, _ := raw["services"].(map[string]any)
	for _, n := range slices.Sorted(maps.Keys(rawServices)) {
		if !hasProfiles(rawServices, n) {
			if err := checkService(n, rawServices[n]); err != nil {
				return nil, err
			}
		}
	}
	return raw, nil
}

// hasProfiles says whether service n names profiles. Such a service is
// checked only once compose-go has said whether it runs: the keys of one
// left out change nothing.
func hasProfiles(rawServices map[string]any, n string) bool {
	svc, _ := rawServices[n].(map[string]any)
	_, ok := svc["profiles"]
	return ok
}

// linkAliases makes links mean what they mean on compose's own networks:
// a service is reached by its name (every replica has it as an alias on
// the fleet network), and "svc:alias" reaches it by alias too.
func linkAliases(project *types.Project, svcs []spec.Service) {
	byName := map[string]*spec.Service{}
	for i := range svcs {
		byName[svcs[i].Name] = &svcs[i]
	}
	for _, n := range slices.Sorted(maps.Keys(project.Services)) {
		for _, l := range project.Services[n].Links {
			target, alias, _ := strings.Cut(l, ":")
			t, ok := byName[target]
			if !ok {
				continue // its implicit depends_on was refused already
			}
			if alias != "" && alias != target && !slices.Contains(t.Aliases, alias) {
				t.Aliases = append(t.Aliases, alias)
			}
		}
	}
}

// needProfiles says which profiles would enable the services left out.
func needProfiles(left types.Services) string {
	var out []string
	for _, n := range slices.Sorted(maps.Keys(left)) {
		out = append(out, n+" needs profile "+strings.Join(left[n].Profiles, " or "))
	}
	return strings.Join(out, "; ")
}

// composeKey names the Compose key of the definition's fields that
// Service.Validate names otherwise (by their flag).
var composeKey = map[string]string{
	"replicas": "deploy.replicas", "cpus": "x-fleet.cpus", "cpuset-cpus": "cpuset", "aliases": "container_name",
	"memory": "mem_limit", "memory-swap": "memswap_limit", "checkpoint-every": "x-fleet.checkpoint-every",
}

// composeErrors names the Compose key path of each error of
// Service.Validate ("services.web.healthcheck.interval: …"), from the
// field of its spec.FieldError.
func composeErrors(c types.ServiceConfig, err error) error {
	at := "services." + c.Name
	var out []error
	for _, e := range spec.Errors(err) {
		var fe *spec.FieldError
		if !errors.As(e, &fe) {
			out = append(out, &spec.FieldError{Field: at, Err: e})
			continue
		}
		key := at + "." + fe.Field
		switch {
		case fe.Field == "name":
			key = at
		case fe.Field == "memory" && c.MemLimit == 0:
			key = at + ".deploy.resources.limits.memory"
		case composeKey[fe.Field] != "":
			key = at + "." + composeKey[fe.Field]
		}
		out = append(out, &spec.FieldError{Field: key, Err: fe.Err})
	}
	return errors.Join(out...)
}

// checkService refuses keys of a service in the raw file that the fleet
// would otherwise drop.
func checkService(name string, v any) error {
	svc, ok := v.(map[string]any)
	if !ok {
		return nil // compose-go explains
	}
	at := "services." + name + "."
	if err := only(at, "", svc, composeService); err != nil {
		return err
	}
	if err := checkServiceAttachments(at, svc); err != nil {
		return err
	}
	if d, ok := svc["deploy"].(map[string]any); ok {
		if err := only(at, "deploy.", d, composeDeploy); err != nil {
			return err
		}
		if res, ok := d["resources"].(map[string]any); ok {
			if err := only(at, "deploy.resources.", res, composeResources); err != nil {
				return err
			}
			if lim, ok := res["limits"].(map[string]any); ok {
				if err := only(at, "deploy.resources.limits.", lim, composeLimits); err != nil {
					return err
				}
			}
		}
		if p, ok := d["placement"].(map[string]any); ok {
			if err := only(at, "deploy.placement.", p, composePlacement); err != nil {
				return err
			}
		}
		if p, ok := d["restart_policy"].(map[string]any); ok {
			if err := only(at, "deploy.restart_policy.", p, composeRestartPolicy); err != nil {
				return err
			}
		}
		if u, ok := d["update_config"].(map[string]any); ok {
			if err := only(at, "deploy.update_config.", u, composeUpdateConfig); err != nil {
				return err
			}
		}
	}
	if x, ok := svc["x-fleet"].(map[string]any); ok {
		if err := only(at, "x-fleet.", x, fleetExtension); err != nil {
			return err
		}
	}
	if b, ok := svc["build"].(map[string]any); ok {
		if err := only(at, "build.", b, composeBuild); err != nil {
			return err
		}
	}
	return nil
}

// only refuses the keys of m (at the path at+rel) not allowed, with the
// reason when the fleet has one.
func only(at, rel string, m map[string]any, allowed map[string]bool) error {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if allowed[k] || (strings.HasPrefix(k, "x-") && k != "x-fleet") {
			continue
		}
		if why, ok := refusedWhy[rel+k]; ok && at != "" {
			return fmt.Errorf("%s%s%s: not supported by docker fleet: %s", at, rel, k, why)
		}
		return fmt.Errorf("%s%s%s: not supported by docker fleet (supported here: %s)", at, rel, k, strings.Join(slices.Sorted(maps.Keys(allowed)), ", "))
	}
	return nil
}

func fromCompose(c types.ServiceConfig, project *types.Project) (spec.Service, error) {
	s := spec.Service{
		Project:    project.Name,
		Name:       c.Name,
		Image:      c.Image,
		Command:    c.Command,
		Entrypoint: c.Entrypoint,
		Cpuset:     c.CPUSet,
		Memory:     int64(c.MemLimit),
		MemorySwap: int64(c.MemSwapLimit),
		Labels:     c.Labels,
		Replicas:   1,
	}
	if c.Image == "" {
		return s, errNoImage
	}
	if c.ContainerName != "" {
		s.Aliases = []string{c.ContainerName}
	}
	// Before depends_on: compose-go makes network_mode: service:X one.
	if _, err := networkMode(c.NetworkMode); err != nil {
		return s, err
	}
	deps, err := dependsOn(c, project)
	if err != nil {
		return s, err
	}
	s.DependsOn = deps
	for k, v := range c.Environment {
		if v != nil {
			s.Env = append(s.Env, k+"="+*v)
		}
	}
	sort.Strings(s.Env)
	if err := fromComposePorts(&s, c); err != nil {
		return s, err
	}
	o, err := options(c)
	if err != nil {
		return s, err
	}
	s.Options = o
	if err := fromComposeVolumes(&s, c, project); err != nil {
		return s, err
	}
	if d := c.Deploy; d != nil {
		if err := fromComposeDeploy(&s, d); err != nil {
			return s, err
		}
	}
	if x, ok := c.Extensions["x-fleet"]; ok {
		if err := fromComposeXFleet(&s, x); err != nil {
			return s, err
		}
	}
	return s, nil
}

// fromComposePorts is fromCompose's phase for ports:.
func fromComposePorts(s *spec.Service, c types.ServiceConfig) error {
	for _, p := range c.Ports {
		port := spec.Port{Container: uint16(p.Target), Protocol: p.Protocol}
		if port.Protocol == "" {
			port.Protocol = "tcp"
		}
		if p.Published != "" {
			n, err := strconv.Atoi(p.Published)
			if err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("ports: published %q: one port number (ranges are not supported)", p.Published)
			}
			port.Host = uint16(n)
		}
		s.Ports = append(s.Ports, port)
	}
	return nil
}

// fromComposeVolumes is fromCompose's phase for volumes: volumes, binds (files
// beside the Compose file become copies) and tmpfs mounts.
func fromComposeVolumes(s *spec.Service, c types.ServiceConfig, project *types.Project) error {
	for _, v := range c.Volumes {
		switch v.Type {
		case types.VolumeTypeBind:
			if rel, ok := besideFile(project, v.Source); ok {
				s.Copies = append(s.Copies, spec.Copy{Source: "./" + filepath.ToSlash(rel), Target: v.Target})
				continue
			}
			s.Volumes = append(s.Volumes, spec.Volume{Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly})
		case types.VolumeTypeVolume:
			s.Volumes = append(s.Volumes, spec.Volume{Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly,
				External: v.Type == types.VolumeTypeVolume && bool(project.Volumes[v.Source].External)})
		case types.VolumeTypeTmpfs:
			if err := addTmpfs(&s.Options, "volumes", v.Target, tmpfsVolumeOptions(v)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("volumes: %s volumes are not supported", v.Type)
		}
	}
	for _, v := range s.Volumes {
		if _, ok := s.Tmpfs[v.Target]; ok {
			return fmt.Errorf("volumes: %s: mounted twice (a volume and a tmpfs)", v.Target)
		}
	}
	return nil
}

// fromComposeDeploy is fromCompose's phase for deploy:.
func fromComposeDeploy(s *spec.Service, d *types.DeployConfig) error {
	if d.Mode != "" && d.Mode != "replicated" {
		return fmt.Errorf("deploy.mode: %q is not supported (replicated only)", d.Mode)
	}
	if d.Replicas != nil {
		s.Replicas = *d.Replicas
	}
	if l := d.Resources.Limits; l != nil && l.MemoryBytes != 0 {
		if s.Memory != 0 && s.Memory != int64(l.MemoryBytes) {
			return fmt.Errorf("deploy.resources.limits.memory: differs from mem_limit")
		}
		s.Memory = int64(l.MemoryBytes)
	}
	if p := d.RestartPolicy; p != nil {
		if err := deployRestart(&s.Options, p); err != nil {
			return err
		}
	}
	if u := d.UpdateConfig; u != nil {
		if u.MaxFailureRatio != 0 {
			return fmt.Errorf("deploy.update_config.max_failure_ratio: not supported by docker fleet: one replica that does not come up stops the update")
		}
		s.UpdateConfig = &spec.UpdateConfig{Delay: spec.Duration(u.Delay), Monitor: spec.Duration(u.Monitor), Order: u.Order, FailureAction: u.FailureAction}
		if u.Parallelism != nil {
			s.UpdateConfig.Parallelism = int(*u.Parallelism)
		}
	}
	s.SetConstraints(d.Placement.Constraints)
	return nil
}

// fromComposeXFleet is fromCompose's phase for the x-fleet extension.
func fromComposeXFleet(s *spec.Service, x any) error {
	m, ok := x.(map[string]any)
	if !ok {
		return fmt.Errorf("x-fleet: a map such as {cpus: 2}")
	}
	if v, ok := m["cpus"]; ok {
		n, ok := v.(int)
		if !ok {
			return fmt.Errorf("x-fleet.cpus: %v is not a whole number of cores", v)
		}
		s.Cores = n
	}
	if v, ok := m["checkpoint-every"]; ok {
		d, err := checkpointEvery(v)
		if err != nil {
			return err
		}
		s.CheckpointEvery = d
	}
	return nil
}

// checkpointEvery reads x-fleet.checkpoint-every ("30s"). The range is
// checked here too, so that the error names the key in the file rather
// than the definition's field.
func checkpointEvery(v any) (spec.Duration, error) {
	const field = "x-fleet.checkpoint-every"
	if v == 0 {
		return 0, nil // YAML's 0: none, as "0s" is
	}
	str, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("%s: %v is not a duration such as 30s", field, v)
	}
	d, err := spec.ParseCheckpointEvery(field, str)
	if err != nil {
		return 0, err
	}
	if t := time.Duration(d); t != 0 && (t < spec.MinCheckpointEvery || t > spec.MaxCheckpointEvery) {
		return 0, fmt.Errorf("%s: %s is out of range (%s to %s, or 0 for none)", field, t, spec.MinCheckpointEvery, spec.MaxCheckpointEvery)
	}
	return d, nil
}

// networkMode maps network_mode: the fleet network, or host alone.
func networkMode(v string) (string, error) {
	if v != "" && v != spec.HostNetwork {
		return "", fmt.Errorf("network_mode: %q: not supported by docker fleet: %s", v, hostNetworkOnly)
	}
	return v, nil
}

// options maps the plain container options of a service.
func options(c types.ServiceConfig) (spec.Options, error) {
	o := spec.Options{
		User:       c.User,
		WorkingDir: c.WorkingDir,
		Hostname:   c.Hostname,
		StopSignal: c.StopSignal,
		StdinOpen:  c.StdinOpen,
		Tty:        c.Tty,
		Init:       c.Init != nil && *c.Init,
		ReadOnly:   c.ReadOnly,
		CapAdd:     c.CapAdd,
		CapDrop:    c.CapDrop,
		ShmSize:    int64(c.ShmSize),
		Restart:    c.Restart,
	}
	o.DNS, o.DNSSearch, o.DNSOptions = c.DNS, c.DNSSearch, c.DNSOpts
	o.PidsLimit = c.PidsLimit
	if d := c.Deploy; d != nil && d.Resources.Limits != nil && d.Resources.Limits.Pids != 0 {
		o.PidsLimit = d.Resources.Limits.Pids
	}
	var err error
	if o.NetworkMode, err = networkMode(c.NetworkMode); err != nil {
		return o, err
	}
	for _, so := range c.SecurityOpt {
		switch strings.ReplaceAll(so, "=", ":") {
		case "no-new-privileges", "no-new-privileges:true":
			o.NoNewPrivileges = true
		case "no-new-privileges:false":
		default:
			// Turning a host's policy off is the same on every host.
			opt, ok := spec.UnconfinedOpt(so)
			if !ok {
				return o, fmt.Errorf("security_opt: %q: not supported by docker fleet: seccomp and AppArmor profiles and SELinux labels are one host's policy, which another node may lack, and a restored process must keep the very same (no-new-privileges, %s are taken)", so, strings.Join(spec.UnconfinedOpts, ", "))
			}
			if !slices.Contains(o.Unconfined, opt) {
				o.Unconfined = append(o.Unconfined, opt)
			}
		}
	}
	switch c.PullPolicy {
	case "", types.PullPolicyMissing, types.PullPolicyIfNotPresent, types.PullPolicyNever, types.PullPolicyBuild:
	default:
		return o, fmt.Errorf("pull_policy: %q: not supported by docker fleet: an image reaches a node from another node that has it, and is pulled from its registry only when no node has it", c.PullPolicy)
	}
	expose, err := exposed(c.Expose)
	if err != nil {
		return o, err
	}
	o.Expose = expose
	if p := strings.ToLower(c.Platform); p != "" && p != "linux/amd64" && p != "linux/x86_64" {
		return o, fmt.Errorf("platform: %q: not supported by docker fleet: replicas run their node engine's own platform (linux/amd64), and a checkpoint restores only on the architecture it was taken on", c.Platform)
	}
	if d := c.StopGracePeriod; d != nil {
		g := spec.Duration(*d)
		o.StopGracePeriod = &g
	}
	if len(c.Sysctls) > 0 {
		o.Sysctls = maps.Clone(map[string]string(c.Sysctls))
	}
	for _, n := range slices.Sorted(maps.Keys(c.Ulimits)) {
		u := c.Ulimits[n]
		soft, hard := u.Soft, u.Hard
		if u.Single != 0 {
			soft, hard = u.Single, u.Single
		}
		o.Ulimits = append(o.Ulimits, spec.Ulimit{Name: n, Soft: int64(soft), Hard: int64(hard)})
	}
	if len(c.ExtraHosts) > 0 {
		o.ExtraHosts = c.ExtraHosts.AsList(":")
		sort.Strings(o.ExtraHosts) // AsList ranges over a map
	}
	for _, t := range c.Tmpfs {
		p, opts, _ := strings.Cut(t, ":")
		if err := addTmpfs(&o, "tmpfs", p, opts); err != nil {
			return o, err
		}
	}
	if l := c.Logging; l != nil && (l.Driver != "" || len(l.Options) > 0) {
		o.Logging = &spec.Logging{Driver: l.Driver}
		if len(l.Options) > 0 {
			o.Logging.Options = maps.Clone(map[string]string(l.Options))
		}
	}
	if h := c.HealthCheck; h != nil {
		hc, err := healthcheck(h)
		if err != nil {
			return o, err
		}
		o.Healthcheck = hc
	}
	return o, nil
}

// maxExposeRange bounds the ports of one expose range, each of which the
// stored definition then names.
const maxExposeRange = 1000

// exposed writes expose's ranges ("9000-9001/udp") out port by port, as
// docker run does: the agent's engine API takes single ports.
func exposed(list []string) ([]string, error) {
	var out []string
	for _, e := range list {
		ports, proto, hasProto := strings.Cut(e, "/")
		lo, hi, isRange := strings.Cut(ports, "-")
		a, errA := strconv.Atoi(lo)
		b, errB := strconv.Atoi(hi)
		if !isRange || errA != nil || errB != nil {
			out = append(out, e) // one port, or Validate says what is wrong
			continue
		}
		switch {
		case a < 1 || b > 65535 || a > b:
			return nil, fmt.Errorf("expose: %q: not a range of port numbers", e)
		case b-a >= maxExposeRange:
			return nil, fmt.Errorf("expose: %q: at most %d ports in a range", e, maxExposeRange)
		}
		for p := a; p <= b; p++ {
			port := strconv.Itoa(p)
			if hasProto {
				port += "/" + proto
			}
			out = append(out, port)
		}
	}
	return out, nil
}

// addTmpfs mounts a tmpfs at p; field names the key that asks for it.
func addTmpfs(o *spec.Options, field, p, opts string) error {
	if _, ok := o.Tmpfs[p]; ok {
		return fmt.Errorf("%s: %s: mounted twice", field, p)
	}
	if o.Tmpfs == nil {
		o.Tmpfs = map[string]string{}
	}
	o.Tmpfs[p] = opts
	return nil
}

// tmpfsVolumeOptions writes a tmpfs volume's long syntax as the mount
// options of docker run --tmpfs.
func tmpfsVolumeOptions(v types.ServiceVolumeConfig) string {
	var opts []string
	if v.ReadOnly {
		opts = append(opts, "ro")
	}
	if t := v.Tmpfs; t != nil {
		if t.Size > 0 {
			opts = append(opts, "size="+strconv.FormatInt(int64(t.Size), 10))
		}
		if t.Mode != 0 {
			opts = append(opts, "mode="+strconv.FormatUint(uint64(t.Mode), 8))
		}
	}
	return strings.Join(opts, ",")
}

func healthcheck(h *types.HealthCheckConfig) (*spec.Healthcheck, error) {
	dur := func(d *types.Duration) spec.Duration {
		if d == nil {
			return 0
		}
		return spec.Duration(*d)
	}
	// compose-go has already made a string test ["CMD-SHELL", s].
	hc := &spec.Healthcheck{
		Test:          h.Test,
		Interval:      dur(h.Interval),
		Timeout:       dur(h.Timeout),
		StartPeriod:   dur(h.StartPeriod),
		StartInterval: dur(h.StartInterval),
	}
	if h.Retries != nil {
		if *h.Retries > math.MaxInt32 {
			return nil, fmt.Errorf("healthcheck.retries: %d is too many", *h.Retries)
		}
		hc.Retries = int(*h.Retries)
	}
	if h.Disable {
		if len(h.Test) > 0 && !slices.Equal(h.Test, []string{"NONE"}) {
			return nil, fmt.Errorf("healthcheck.disable: true, and a test is given: give one of them")
		}
		hc.Test = []string{"NONE"}
	}
	return hc, nil
}

// deployRestart maps a swarm stack's deploy.restart_policy onto the
// engine's restart policy; restart: and it must then agree.
func deployRestart(o *spec.Options, p *types.RestartPolicy) error {
	const field = "deploy.restart_policy"
	var policy string
	switch p.Condition {
	case "none":
		policy = "no"
	case "on-failure":
		policy = "on-failure"
		if p.MaxAttempts != nil && *p.MaxAttempts > 0 { // swarm's 0 is unlimited, as docker's on-failure
			policy += ":" + strconv.FormatUint(*p.MaxAttempts, 10)
		}
	case "any", "": // swarm's default
		policy = "always"
	default:
		return fmt.Errorf("%s.condition: %q: use none, on-failure or any", field, p.Condition)
	}
	if p.MaxAttempts != nil && *p.MaxAttempts > 0 && p.Condition != "on-failure" {
		return fmt.Errorf("%s.max_attempts: only with condition: on-failure (the engine counts retries only for on-failure)", field)
	}
	if o.Restart != "" && !sameRestart(o.Restart, policy) {
		return fmt.Errorf("%s: means restart %s, but restart: is %s: give one of them", field, policy, o.Restart)
	}
	o.Restart = policy
	return nil
}

// sameRestart tells whether two restart policies are the same
// (on-failure:0 is on-failure).
func sameRestart(a, b string) bool {
	an, ar, aerr := spec.RestartPolicy(a)
	bn, br, berr := spec.RestartPolicy(b)
	if aerr != nil || berr != nil {
		return a == b
	}
	return an == bn && ar == br
}

// withDotEnv adds the variables of the project folder's .env file, as
// docker compose reads it, to env: a variable set in env wins.
func withDotEnv(env map[string]string, workingDir string) (map[string]string, error) {
	file := filepath.Join(workingDir, ".env")
	if fi, err := os.Stat(file); err != nil || fi.IsDir() {
		return env, nil
	}
	vars, err := dotenv.GetEnvFromFile(env, []string{file})
	if err != nil {
		return nil, fmt.Errorf(".env: %w", err)
	}
	out := maps.Clone(vars)
	maps.Copy(out, env)
	return out, nil
}
