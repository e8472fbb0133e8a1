package specfile

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/docker-fleet/fleet/shared/spec"
)

// task is a RESTfulSwarm container definition.
type task struct {
	Node          string          `json:"node"`
	ContainerName string          `json:"container_name"`
	Image         string          `json:"image"`
	Detach        *bool           `json:"detach"`
	Network       string          `json:"network"`
	Command       json.RawMessage `json:"command"`
	CpusetCpus    string          `json:"cpuset_cpus"`
	MemLimit      json.RawMessage `json:"mem_limit"`
	Ports         json.RawMessage `json:"ports"`
	Volumes       json.RawMessage `json:"volumes"`
	Environment   json.RawMessage `json:"environment"`
}

type job struct {
	JobName string `json:"job_name"`
	JobInfo struct {
		Network *struct {
			Name   string `json:"name"`
			Driver string `json:"driver"`
			Subnet string `json:"subnet"`
		} `json:"network"`
		Tasks map[string]json.RawMessage `json:"tasks"`
	} `json:"job_info"`
}

func parseTask(data []byte) (*Result, error) {
	var t task
	if err := strictUnmarshal(data, &t); err != nil {
		return nil, err
	}
	s, err := t.service("")
	if err != nil {
		return nil, err
	}
	r := &Result{Format: RESTfulTask, Services: []spec.Service{s}}
	if t.Network != "" {
		r.Networks = append(r.Networks, t.Network)
	}
	return r, nil
}

func parseJob(data []byte) (*Result, error) {
	var j job
	if err := strictUnmarshal(data, &j); err != nil {
		return nil, err
	}
	if err := requireName("job_name", j.JobName); err != nil {
		return nil, err
	}
	if len(j.JobInfo.Tasks) == 0 {
		return nil, fmt.Errorf("job_info.tasks: no tasks")
	}
	r := &Result{Format: RESTfulSwarmJob}
	if n := j.JobInfo.Network; n != nil && n.Name != "" {
		r.Networks = append(r.Networks, n.Name)
	}
	names := make([]string, 0, len(j.JobInfo.Tasks))
	for k := range j.JobInfo.Tasks {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		field := "job_info.tasks." + name
		var t task
		if err := strictUnmarshal(j.JobInfo.Tasks[name], &t); err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		s, err := t.service(field + ".")
		if err != nil {
			return nil, err
		}
		if t.ContainerName == "" {
			s.Name = name
		}
		s.Labels = map[string]string{"com.docker.fleet.job": j.JobName}
		r.Services = append(r.Services, s)
		if t.Network != "" {
			r.Networks = append(r.Networks, t.Network)
		}
	}
	return r, nil
}

// service maps a task to a one-replica service named after its container.
func (t task) service(prefix string) (spec.Service, error) {
	s := spec.Service{Name: t.ContainerName, Image: t.Image, Node: t.Node, Cpuset: t.CpusetCpus, Replicas: 1}
	if t.Image == "" {
		return s, fmt.Errorf("%s%w", prefix, errNoImage)
	}
	var err error
	if s.Command, err = command(prefix+"command", t.Command); err != nil {
		return s, err
	}
	if s.Memory, err = memory(prefix+"mem_limit", t.MemLimit); err != nil {
		return s, err
	}
	if s.Ports, err = dockerPyPorts(prefix+"ports", t.Ports); err != nil {
		return s, err
	}
	if s.Volumes, err = dockerPyVolumes(prefix+"volumes", t.Volumes); err != nil {
		return s, err
	}
	if s.Env, err = environment(prefix+"environment", t.Environment); err != nil {
		return s, err
	}
	if t.Detach != nil && !*t.Detach {
		return s, fmt.Errorf("%sdetach: false is not supported: fleet containers always run detached", prefix)
	}
	return s, nil
}
