package workloads

import (
	"net/netip"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/spec"
)

func options() spec.Options {
	grace := spec.Duration(7 * time.Second)
	return spec.Options{
		User: "1000:1000", WorkingDir: "/srv", Hostname: "api", StopSignal: "SIGINT", StopGracePeriod: &grace,
		StdinOpen: true, Tty: true, Init: true, ReadOnly: true,
		CapAdd: []string{"NET_ADMIN"}, CapDrop: []string{"MKNOD"},
		Sysctls:    map[string]string{"net.core.somaxconn": "1024"},
		Ulimits:    []spec.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}},
		ExtraHosts: []string{"db:10.0.0.5"}, Tmpfs: map[string]string{"/scratch": "size=16m"}, ShmSize: 128 << 20,
		Restart: "on-failure:3", Logging: &spec.Logging{Driver: "json-file", Options: map[string]string{"max-size": "1m"}},
		Healthcheck: &spec.Healthcheck{Test: []string{"CMD", "true"}, Interval: spec.Duration(2 * time.Second), Retries: 3},
		Expose:      []string{"9000", "53/udp"},
		DNS:         []string{"10.0.0.53"}, DNSSearch: []string{"example.com"}, PidsLimit: 100, NoNewPrivileges: true,
		Unconfined: []string{"seccomp=unconfined", "apparmor=unconfined"},
	}
}

// TestCreateGivesOptions: a replica gets every option as docker run
// would give it, and its name stays its hostname unless one is given.
func TestCreateGivesOptions(t *testing.T) {
	req := api.CreateRequest{Name: "web.1", Replica: 1, Network: "fleet", Service: spec.Service{Name: "web", Image: "img", Options: options()}}
	o, err := createOptions(req, nil)
	assert.NilError(t, err)
	c, h := o.Config, o.HostConfig
	assert.Check(t, is.Equal(c.User, "1000:1000"))
	assert.Check(t, is.Equal(c.WorkingDir, "/srv"))
	assert.Check(t, is.Equal(c.Hostname, "api"))
	assert.Check(t, is.Equal(c.StopSignal, "SIGINT"))
	assert.Check(t, c.StopTimeout != nil && *c.StopTimeout == 7)
	assert.Check(t, c.OpenStdin && c.Tty)
	assert.Check(t, is.Len(c.ExposedPorts, 2))
	assert.Check(t, is.DeepEqual(c.Healthcheck, &container.HealthConfig{Test: []string{"CMD", "true"}, Interval: 2 * time.Second, Retries: 3}))
	assert.Check(t, h.Init != nil && *h.Init && h.ReadonlyRootfs)
	assert.Check(t, is.DeepEqual(h.CapAdd, []string{"NET_ADMIN"}))
	assert.Check(t, is.DeepEqual(h.CapDrop, []string{"MKNOD"}))
	assert.Check(t, is.Equal(h.Sysctls["net.core.somaxconn"], "1024"))
	assert.Check(t, is.DeepEqual(h.Ulimits, []*container.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}}))
	assert.Check(t, is.DeepEqual(h.ExtraHosts, []string{"db:10.0.0.5"}))
	assert.Check(t, is.Equal(h.Tmpfs["/scratch"], "size=16m"))
	assert.Check(t, is.Equal(h.ShmSize, int64(128<<20)))
	assert.Check(t, is.DeepEqual(h.RestartPolicy, container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: 3}))
	assert.Check(t, is.Equal(h.LogConfig.Type, "json-file"))
	assert.Check(t, len(h.DNS) == 1 && h.DNS[0] == netip.MustParseAddr("10.0.0.53"), "%v", h.DNS)
	assert.Check(t, h.PidsLimit != nil && *h.PidsLimit == 100)
	assert.Check(t, is.DeepEqual(h.SecurityOpt, []string{"no-new-privileges", "seccomp=unconfined", "apparmor=unconfined"}))

	req.Service.Options = spec.Options{}
	req.Service.Volumes = []spec.Volume{{Target: "/cache"}, {Target: "/tmp/x"}, {Source: "data", Target: "/data"}}
	o, err = createOptions(req, nil)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(o.Config.Volumes, map[string]struct{}{"/cache": {}, "/tmp/x": {}}), "anonymous volumes")
	assert.Check(t, is.DeepEqual(o.HostConfig.Binds, []string{"data:/data"}))
	assert.Check(t, is.Equal(o.Config.Hostname, "web.1"))
	assert.Check(t, o.HostConfig.Init == nil)
}

// TestCarryHostConfig: a twin takes over the options, and nothing of the
// source host (binds, devices, privileges, namespaces, cpuset).
func TestCarryHostConfig(t *testing.T) {
	req := api.CreateRequest{Name: "web.1", Network: "fleet", Service: spec.Service{Name: "web", Image: "img", Options: options()}}
	o, err := createOptions(req, nil)
	assert.NilError(t, err)
	src := *o.HostConfig
	src.Binds = []string{"/etc:/host-etc"}
	src.Privileged = true
	src.PidMode = "host"
	src.Devices = []container.DeviceMapping{{PathOnHost: "/dev/sda"}}
	src.CpusetCpus = "1"
	src.SecurityOpt = []string{"apparmor=docker-custom", "seccomp:unconfined", "no-new-privileges", "label=level:s0", "label:disable"}

	got := CarryHostConfig(&src)
	assert.Check(t, !got.Privileged && got.PidMode == "" && got.Binds == nil && got.Devices == nil && got.CpusetCpus == "")
	assert.Check(t, is.DeepEqual(got.SecurityOpt, []string{"no-new-privileges", "seccomp=unconfined", "label=disable"}),
		"no-new-privileges and what turns a host's policy off, in docker's form; no profile or label of the source host")
	assert.Check(t, is.DeepEqual(Unconfined(&src), []string{"seccomp=unconfined", "label=disable"}))
	unconfined := container.HostConfig{SecurityOpt: []string{"seccomp=unconfined"}}
	assert.Check(t, is.DeepEqual(CarriedOptions(&unconfined), []string{"security_opt"}), "unconfined alone is carried")
	assert.Check(t, is.DeepEqual(got.CapAdd, src.CapAdd))
	assert.Check(t, is.DeepEqual(got.Sysctls, src.Sysctls))
	assert.Check(t, is.DeepEqual(got.Tmpfs, src.Tmpfs))
	assert.Check(t, is.DeepEqual(got.Ulimits, src.Ulimits))
	assert.Check(t, is.DeepEqual(got.RestartPolicy, src.RestartPolicy))
	assert.Check(t, is.Equal(got.ShmSize, src.ShmSize))
	assert.Check(t, is.DeepEqual(CarriedOptions(&src), []string{"cap_add", "cap_drop", "sysctls", "tmpfs", "shm_size",
		"read_only", "init", "extra_hosts", "restart", "ulimits", "dns", "pids_limit", "security_opt"}))
	// What the engine reports for a container made with no options.
	plain := container.HostConfig{ShmSize: 64 << 20, RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		LogConfig: container.LogConfig{Type: "json-file"}}
	assert.Check(t, is.Len(CarriedOptions(&plain), 0))
}

// TestCreateOnHostNetwork: a replica with network_mode: host is on its
// node's network, with nothing of the fleet network's.
func TestCreateOnHostNetwork(t *testing.T) {
	svc := spec.Service{Name: "web", Image: "img", Aliases: []string{"www"},
		Options: spec.Options{NetworkMode: spec.HostNetwork, Expose: []string{"8080"}, Restart: "always"}}
	o, err := createOptions(api.CreateRequest{Name: "web.1", Replica: 1, Network: "fleet", Service: svc}, nil)
	assert.NilError(t, err)
	assert.Check(t, o.HostConfig.NetworkMode.IsHost())
	assert.Check(t, o.NetworkingConfig == nil, "no endpoint, no aliases")
	assert.Check(t, is.Equal(o.Config.Hostname, ""), "its node's hostname")
	assert.Check(t, is.Len(o.HostConfig.PortBindings, 0))
	assert.Check(t, is.Len(o.Config.ExposedPorts, 1))
	_, labelled := o.Config.Labels[labels.NetworkName]
	assert.Check(t, !labelled, "on no fleet network")
	assert.Check(t, is.Equal(o.Config.Labels[labels.Service], "web"))
	assert.Check(t, is.Equal(string(o.HostConfig.RestartPolicy.Name), "always"))
}
