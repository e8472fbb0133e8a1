package specfile

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"

	"github.com/docker-fleet/fleet/shared/spec"
)

// What of a Compose file the fleet does. Anything else that would change
// what runs is refused by name.
var (
	composeTop     = keys("name", "version", "services", "volumes")
	composeService = keys("image", "command", "entrypoint", "environment", "env_file", "ports", "volumes",
		"cpuset", "mem_limit", "memswap_limit", "deploy", "labels", "x-fleet")
	composeDeploy    = keys("replicas", "resources", "placement", "mode")
	composeResources = keys("limits")
	composeLimits    = keys("memory")
	composePlacement = keys("constraints")
	fleetExtension   = keys("cpus", "checkpoint-every")
)

func keys(k ...string) map[string]bool {
	m := map[string]bool{}
	for _, s := range k {
		m[s] = true
	}
	return m
}

func parseCompose(name string, data []byte, workingDir string, env map[string]string) (*Result, error) {
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("malformed YAML: %w", err)
	}
	if err := checkKeys(raw); err != nil {
		return nil, err
	}
	if name == "-" || name == "" {
		name = "compose.yaml"
	}
	project, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  workingDir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(workingDir, filepath.Base(name)), Content: data}},
		Environment: env,
	}, func(o *loader.Options) {
		o.SetProjectName("fleet", true)
		o.SkipConsistencyCheck = true
	})
	if err != nil {
		return nil, err
	}
	r := &Result{Format: Compose}
	names := slices.Sorted(maps.Keys(project.Services))
	for _, n := range names {
		s, err := fromCompose(project.Services[n])
		if err != nil {
			return nil, fmt.Errorf("services.%s.%w", n, err)
		}
		r.Services = append(r.Services, s)
	}
	if len(r.Services) == 0 {
		return nil, fmt.Errorf("services: none defined")
	}
	return r, nil
}

// checkKeys refuses keys of the raw file the fleet would otherwise drop.
func checkKeys(raw map[string]any) error {
	if err := only("", raw, composeTop); err != nil {
		return err
	}
	services, _ := raw["services"].(map[string]any)
	for name, v := range services {
		svc, ok := v.(map[string]any)
		if !ok {
			continue // compose-go explains
		}
		at := "services." + name + "."
		if err := only(at, svc, composeService); err != nil {
			return err
		}
		if d, ok := svc["deploy"].(map[string]any); ok {
			if err := only(at+"deploy.", d, composeDeploy); err != nil {
				return err
			}
			if res, ok := d["resources"].(map[string]any); ok {
				if err := only(at+"deploy.resources.", res, composeResources); err != nil {
					return err
				}
				if lim, ok := res["limits"].(map[string]any); ok {
					if err := only(at+"deploy.resources.limits.", lim, composeLimits); err != nil {
						return err
					}
				}
			}
			if p, ok := d["placement"].(map[string]any); ok {
				if err := only(at+"deploy.placement.", p, composePlacement); err != nil {
					return err
				}
			}
		}
		if x, ok := svc["x-fleet"].(map[string]any); ok {
			if err := only(at+"x-fleet.", x, fleetExtension); err != nil {
				return err
			}
		}
	}
	return nil
}

func only(at string, m map[string]any, allowed map[string]bool) error {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if allowed[k] || (strings.HasPrefix(k, "x-") && k != "x-fleet") {
			continue
		}
		return fmt.Errorf("%s%s: not supported by docker fleet (supported here: %s)", at, k, strings.Join(slices.Sorted(maps.Keys(allowed)), ", "))
	}
	return nil
}

func fromCompose(c types.ServiceConfig) (spec.Service, error) {
	s := spec.Service{
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
	for k, v := range c.Environment {
		if v != nil {
			s.Env = append(s.Env, k+"="+*v)
		}
	}
	sort.Strings(s.Env)
	for _, p := range c.Ports {
		port := spec.Port{Container: uint16(p.Target), Protocol: p.Protocol}
		if port.Protocol == "" {
			port.Protocol = "tcp"
		}
		if p.Published != "" {
			n, err := strconv.Atoi(p.Published)
			if err != nil || n < 1 || n > 65535 {
				return s, fmt.Errorf("ports: published %q: one port number (ranges are not supported)", p.Published)
			}
			port.Host = uint16(n)
		}
		s.Ports = append(s.Ports, port)
	}
	for _, v := range c.Volumes {
		if v.Type != types.VolumeTypeVolume && v.Type != types.VolumeTypeBind {
			return s, fmt.Errorf("volumes: %s volumes are not supported", v.Type)
		}
		s.Volumes = append(s.Volumes, spec.Volume{Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly})
	}
	if d := c.Deploy; d != nil {
		if d.Mode != "" && d.Mode != "replicated" {
			return s, fmt.Errorf("deploy.mode: %q is not supported (replicated only)", d.Mode)
		}
		if d.Replicas != nil {
			s.Replicas = *d.Replicas
		}
		if l := d.Resources.Limits; l != nil && l.MemoryBytes != 0 {
			if s.Memory != 0 && s.Memory != int64(l.MemoryBytes) {
				return s, fmt.Errorf("deploy.resources.limits.memory: differs from mem_limit")
			}
			s.Memory = int64(l.MemoryBytes)
		}
		for _, con := range d.Placement.Constraints {
			k, v, ok := strings.Cut(strings.ReplaceAll(con, " ", ""), "==")
			if !ok || k != "node.hostname" {
				return s, fmt.Errorf("deploy.placement.constraints: %q: only node.hostname==NAME is supported", con)
			}
			s.Node = v
		}
	}
	if x, ok := c.Extensions["x-fleet"]; ok {
		m, ok := x.(map[string]any)
		if !ok {
			return s, fmt.Errorf("x-fleet: a map such as {cpus: 2}")
		}
		if v, ok := m["cpus"]; ok {
			n, ok := v.(int)
			if !ok {
				return s, fmt.Errorf("x-fleet.cpus: %v is not a whole number of cores", v)
			}
			s.Cores = n
		}
		if v, ok := m["checkpoint-every"]; ok {
			d, err := checkpointEvery(v)
			if err != nil {
				return s, err
			}
			s.CheckpointEvery = d
		}
	}
	return s, nil
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
