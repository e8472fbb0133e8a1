package specfile

import (
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/spec"
)

func parse(t *testing.T, doc string) (*Result, error) {
	t.Helper()
	return Parse("f", []byte(doc), t.TempDir(), map[string]string{"TAG": "v1"})
}

const composeDoc = `
services:
  web:
    image: fleet-workload:${TAG}
    command: ["/workload", "-x"]
    environment:
      BALLAST_MB: "8"
      MODE: test
    ports: ["18080:8080"]
    volumes: ["data:/var/lib/data:ro"]
    mem_limit: 64m
    deploy:
      replicas: 2
      placement:
        constraints: ["node.hostname == h2"]
    x-fleet: {cpus: 1}
  db:
    image: db
    cpuset: "1"
    deploy:
      resources: {limits: {memory: 96m}}
volumes:
  data: {}
`

func TestCompose(t *testing.T) {
	r, err := parse(t, composeDoc)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(r.Format, Compose))
	assert.Assert(t, is.Len(r.Services, 2))
	db, web := r.Services[0], r.Services[1]
	assert.Check(t, is.DeepEqual(web, spec.Service{
		Name: "web", Image: "fleet-workload:v1", Command: []string{"/workload", "-x"},
		Env:      []string{"BALLAST_MB=8", "MODE=test"},
		Ports:    []spec.Port{{Host: 18080, Container: 8080, Protocol: "tcp"}},
		Volumes:  []spec.Volume{{Source: "data", Target: "/var/lib/data", ReadOnly: true}},
		Replicas: 2, Cores: 1, Memory: 64 << 20, Node: "h2",
	}))
	assert.Check(t, is.Equal(db.Cpuset, "1"))
	assert.Check(t, is.Equal(db.Memory, int64(96<<20)))
	assert.Check(t, is.Equal(db.Replicas, 1))
}

func TestComposeRefusesWhatItWouldDrop(t *testing.T) {
	for doc, want := range map[string]string{
		"services:\n  a:\n    image: x\n    privileged: true\n":                                         "services.a.privileged: not supported",
		"services:\n  a:\n    image: x\n    deploy: {resources: {limits: {cpus: '0.5'}}}\n":             "services.a.deploy.resources.limits.cpus: not supported",
		"services:\n  a:\n    image: x\n    deploy: {placement: {constraints: [node.role==manager]}}\n": "only node.hostname==NAME",
		"services:\n  a:\n    image: x\n    x-fleet: {cores: 2}\n":                                      "services.a.x-fleet.cores: not supported",
		"services:\n  a:\n    image: x\nnetworks: {n: {}}\n":                                            "networks: not supported",
		"services:\n  a:\n    build: .\n":                                                               "services.a.build: not supported",
		"services:\n  a:\n    command: x\n":                                                             "services.a.image: missing",
		"services:\n  a:\n    image: x\n    x-fleet: {cpus: 1.5}\n":                                     "x-fleet.cpus: 1.5 is not a whole number",
		"services: [\n": "malformed YAML",
	} {
		_, err := parse(t, doc)
		assert.Check(t, is.ErrorContains(err, want), doc)
	}
}

func TestComposeCheckpointEvery(t *testing.T) {
	r, err := parse(t, "services:\n  db:\n    image: postgres:15\n    x-fleet: {cpus: 1, checkpoint-every: 30s}\n")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(r.Services[0].CheckpointEvery, spec.Duration(30*time.Second)))
	assert.Check(t, is.Equal(r.Services[0].Cores, 1))
	r, err = parse(t, "services:\n  db:\n    image: postgres:15\n    x-fleet: {checkpoint-every: 0}\n")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(r.Services[0].CheckpointEvery, spec.Duration(0)))

	for v, want := range map[string]string{
		"12q":   `services.db.x-fleet.checkpoint-every: "12q" is not a duration`,
		"1s":    "services.db.x-fleet.checkpoint-every: 1s is out of range",
		"25h":   "services.db.x-fleet.checkpoint-every: 25h0m0s is out of range",
		"30":    "services.db.x-fleet.checkpoint-every: 30 is not a duration",
		"[30s]": "services.db.x-fleet.checkpoint-every: [30s] is not a duration",
	} {
		_, err := parse(t, "services:\n  db:\n    image: postgres:15\n    x-fleet: {checkpoint-every: "+v+"}\n")
		assert.Check(t, is.ErrorContains(err, want), v)
	}
}

func TestRESTfulSwarmTask(t *testing.T) {
	r, err := parse(t, `{"node": "h2", "container_name": "c1", "image": "img", "detach": true, "network": "fleet",
		"command": "sh -c 'sleep 1'", "cpuset_cpus": "1", "mem_limit": "20m",
		"ports": {"8080/tcp": 18080}, "volumes": {"vol": {"bind": "/data", "mode": "rw"}},
		"environment": ["A=1"]}`)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(r.Format, RESTfulTask))
	assert.Check(t, is.DeepEqual(r.Networks, []string{"fleet"}))
	assert.Check(t, is.DeepEqual(r.Services[0], spec.Service{
		Name: "c1", Image: "img", Node: "h2", Cpuset: "1", Memory: 20 << 20, Replicas: 1,
		Command: []string{"sh", "-c", "sleep 1"}, Env: []string{"A=1"},
		Ports:   []spec.Port{{Host: 18080, Container: 8080, Protocol: "tcp"}},
		Volumes: []spec.Volume{{Source: "vol", Target: "/data"}},
	}))
}

func TestRESTfulSwarmJob(t *testing.T) {
	r, err := parse(t, `{"job_name": "j", "job_info": {"network": {"name": "fleet", "driver": "overlay", "subnet": "10.0.0.0/24"},
		"tasks": {"t2": {"container_name": "b", "image": "img"}, "t1": {"container_name": "a", "image": "img", "mem_limit": "8m"}}}}`)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(r.Format, RESTfulSwarmJob))
	assert.Assert(t, is.Len(r.Services, 2))
	assert.Check(t, is.Equal(r.Services[0].Name, "a"))
	assert.Check(t, is.Equal(r.Services[0].Memory, int64(8<<20)))
	assert.Check(t, is.Equal(r.Services[0].Labels["com.docker.fleet.job"], "j"))
	assert.Check(t, is.DeepEqual(r.Networks, []string{"fleet"}))
}

func TestGenisys(t *testing.T) {
	r, err := parse(t, `{"name": "g", "image": "img", "command": "serve --port 80", "environment": {"A": "1", "B": 2}, "ports": ["8080"]}`)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(r.Format, Genisys))
	assert.Check(t, is.DeepEqual(r.Services[0], spec.Service{
		Name: "g", Image: "img", Replicas: 1, Command: []string{"serve", "--port", "80"},
		Env: []string{"A=1", "B=2"}, Ports: []spec.Port{{Host: 8080, Container: 8080, Protocol: "tcp"}},
	}))
}

func TestJSONErrors(t *testing.T) {
	for doc, want := range map[string]string{
		`{"name": "g"`:   "f: malformed JSON",
		`{"name": "g"}`:  "f: image: missing",
		`{"image": "i"}`: "f: name: missing",
		`{"name": "g", "image": "i", "volumes": []}`:                                  `unknown field "volumes"`,
		`{"container_name": "c"}`:                                                     "f: image: missing",
		`{"container_name": "c", "image": "i", "mem_limit": "12q"}`:                   `mem_limit: "12q" is not a size`,
		`{"container_name": "c", "image": "i", "detach": false}`:                      "detach: false is not supported",
		`{"job_name": "j", "job_info": {"tasks": {}}}`:                                "job_info.tasks: no tasks",
		`{"job_name": "j", "job_info": {"tasks": {"t": {"image": "i", "bogus": 1}}}}`: `job_info.tasks.t: malformed: json: unknown field "bogus"`,
		`{"what": 1}`: "not a Compose file, RESTfulSwarm task or job, or Genisys service",
		``:            "empty file",
	} {
		_, err := parse(t, doc)
		assert.Check(t, is.ErrorContains(err, want), doc)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(composeDoc)
	f.Add(`{"container_name": "c", "image": "i", "ports": {"80": 8080}}`)
	f.Add(`{"job_name": "j", "job_info": {"tasks": {"t": {"image": "i"}}}}`)
	f.Add(`{"name": "g", "image": "i", "ports": ["80/udp"]}`)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, doc string) {
		r, err := Parse("f", []byte(doc), dir, nil)
		if err != nil {
			return
		}
		for _, s := range r.Services {
			if s.Image == "" {
				t.Fatalf("a service without an image was accepted: %+v", s)
			}
		}
	})
}
