// Package specfile reads the service files create accepts, telling them
// apart by their content: a Compose file, a RESTfulSwarm task or job, or a
// Genisys service definition. Keys that would change what runs and that the
// fleet does not do are errors, never silently dropped.
package specfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mattn/go-shellwords"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
)

// Result is what a file defines.
type Result struct {
	Format   string
	Services []spec.Service
	// Networks are the networks the file names; they must be the fleet's.
	Networks []string
	// NetworkDefs are the networks a Compose file declares that its
	// services use, which create makes or finds (compose_networks.go).
	NetworkDefs []spec.Network
	// Files are the contents of the secrets and configs its services use,
	// read on this machine: they go to the agents alone.
	Files []api.FileContent
	// Copies are the contents of the files and folders beside a Compose
	// file that its services bind-mount, by service (spec.Copy).
	Copies map[string][]api.CopyContent
	// Project is a Compose file's project (every service's Project).
	Project string
	// Builds are the images a Compose file builds before its services
	// run, by service name.
	Builds []Build
	// Notices are what create tells the user it made of the file
	// differently than docker compose would (a bridge network made an
	// overlay), one line each, on stderr.
	Notices []string
}

// Option changes how Parse reads a file.
type Option func(*parseOptions)

type parseOptions struct {
	project string
}

// WithProject names a Compose file's project, as docker compose -p does;
// without it the project is the file's name:, else its folder's name.
func WithProject(name string) Option {
	return func(o *parseOptions) { o.project = name }
}

// Formats, as Result.Format names them.
const (
	Compose         = "compose"
	RESTfulSwarmJob = "RESTfulSwarm job"
	RESTfulTask     = "RESTfulSwarm task"
	Genisys         = "Genisys service"
)

// Parse reads a service file. name is shown in errors ("-" for stdin);
// workingDir resolves a Compose file's relative paths.
func Parse(name string, data []byte, workingDir string, env map[string]string, opts ...Option) (*Result, error) {
	var o parseOptions
	for _, opt := range opts {
		opt(&o)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%s: empty file", name)
	}
	if trimmed[0] == '{' || trimmed[0] == '[' {
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(trimmed, &probe); err != nil {
			return nil, fmt.Errorf("%s: malformed JSON: %w", name, err)
		}
		var parse func([]byte) (*Result, error)
		switch {
		case probe["services"] != nil:
		case probe["job_name"] != nil || probe["job_info"] != nil:
			parse = parseJob
		case probe["container_name"] != nil:
			parse = parseTask
		case probe["name"] != nil || probe["image"] != nil:
			parse = parseGenisys
		default:
			return nil, fmt.Errorf("%s: not a Compose file, RESTfulSwarm task or job, or Genisys service (no services, container_name, job_name or name key)", name)
		}
		if parse != nil {
			r, err := parse(trimmed)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			return r, nil
		}
	}
	r, err := parseCompose(name, data, workingDir, env, o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return r, nil
}

// strictUnmarshal decodes JSON, refusing keys the target does not have.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed: %w", err)
	}
	return nil
}

// command reads a command given as a string (split as a shell would) or a
// list of strings.
func command(field string, raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		return list, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("%s: a string or a list of strings", field)
	}
	words, err := shellwords.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return words, nil
}

// environment reads {"K": "V"} or ["K=V"] into sorted K=V strings.
func environment(field string, raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		return list, nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: a map or a list of KEY=VALUE", field)
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		switch v := v.(type) {
		case string:
			out = append(out, k+"="+v)
		case float64, bool:
			out = append(out, fmt.Sprintf("%s=%v", k, v))
		case nil:
			out = append(out, k)
		default:
			return nil, fmt.Errorf("%s.%s: not a plain value", field, k)
		}
	}
	sort.Strings(out)
	return out, nil
}

// memory reads "20m" or a number of bytes.
func memory(field string, raw json.RawMessage) (int64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err == nil {
		if n <= 0 {
			return 0, fmt.Errorf("%s: %d is not a size", field, n)
		}
		return n, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, fmt.Errorf("%s: a size such as \"64m\"", field)
	}
	return spec.ParseMemory(field, s)
}

// dockerPyPorts reads docker-py's {"8080/tcp": 80} (container port → host
// port, null for any) or a list of docker -p strings.
func dockerPyPorts(field string, raw json.RawMessage) ([]spec.Port, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		return parseEach(field, list, spec.ParsePort)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: a map of container port to host port, or a list", field)
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		switch v := m[k].(type) {
		case nil:
			list = append(list, k)
		case float64:
			list = append(list, strconv.Itoa(int(v))+":"+k)
		case string:
			list = append(list, v+":"+k)
		default:
			return nil, fmt.Errorf("%s.%s: host port must be a number", field, k)
		}
	}
	return parseEach(field, list, spec.ParsePort)
}

// dockerPyVolumes reads docker-py's {"src": {"bind": "/p", "mode": "ro"}}
// or a list of docker -v strings.
func dockerPyVolumes(field string, raw json.RawMessage) ([]spec.Volume, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		return parseEach(field, list, spec.ParseVolume)
	}
	var m map[string]struct {
		Bind string `json:"bind"`
		Mode string `json:"mode"`
	}
	if err := strictUnmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: a map of source to {bind, mode}, or a list", field)
	}
	for _, src := range slices.Sorted(maps.Keys(m)) {
		v := src + ":" + m[src].Bind
		if m[src].Mode != "" {
			v += ":" + m[src].Mode
		}
		list = append(list, v)
	}
	return parseEach(field, list, spec.ParseVolume)
}

// parseEach parses every item, naming field in errors.
func parseEach[T any](field string, items []string, parse func(string) (T, error)) ([]T, error) {
	out := make([]T, 0, len(items))
	for _, it := range items {
		v, err := parse(it)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		out = append(out, v)
	}
	return out, nil
}

var errNoImage = errors.New("image: missing")

func requireName(field, name string) error {
	if strings.TrimSpace(name) == "" {
		return fmt.Errorf("%s: missing", field)
	}
	return nil
}
