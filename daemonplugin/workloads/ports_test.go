package workloads

import (
	"net/netip"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/spec"
)

func hp(port uint16, proto, by string) api.HostPort {
	return api.HostPort{Port: port, Protocol: proto, Container: by}
}

func TestPortConflicts(t *testing.T) {
	taken := []api.HostPort{hp(8080, "tcp", "web.1"), hp(53, "udp", "dns"), hp(9000, "tcp", "nginx")}
	for _, tc := range []struct {
		name   string
		taken  []api.HostPort
		wanted []api.HostPort
		want   []api.HostPort
	}{
		{"nothing wanted", taken, nil, nil},
		{"nothing taken", nil, []api.HostPort{hp(8080, "tcp", "")}, nil},
		{"free", taken, []api.HostPort{hp(8081, "tcp", "")}, nil},
		{"taken by a fleet replica", taken, []api.HostPort{hp(8080, "tcp", "")}, []api.HostPort{hp(8080, "tcp", "web.1")}},
		{"taken outside the fleet", taken, []api.HostPort{hp(9000, "tcp", "")}, []api.HostPort{hp(9000, "tcp", "nginx")}},
		{"udp and tcp differ", taken, []api.HostPort{hp(8080, "udp", ""), hp(53, "tcp", "")}, nil},
		{"protocols in any case", taken, []api.HostPort{hp(53, "UDP", "")}, []api.HostPort{hp(53, "udp", "dns")}},
		{"each conflict once, in the order wanted", taken,
			[]api.HostPort{hp(9000, "tcp", ""), hp(8081, "tcp", ""), hp(8080, "tcp", "")},
			[]api.HostPort{hp(9000, "tcp", "nginx"), hp(8080, "tcp", "web.1")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Check(t, is.DeepEqual(portConflicts(tc.taken, tc.wanted), tc.want))
		})
	}
}

func TestCheckPortsRefusesAsConflict(t *testing.T) {
	st := &state{ports: []api.HostPort{hp(8080, "tcp", "web.1")}}
	assert.NilError(t, st.checkPorts("h2", []api.HostPort{hp(8080, "udp", "")}))
	err := st.checkPorts("h2", []api.HostPort{hp(8080, "tcp", "")})
	assert.Check(t, errdefs.IsConflict(err))
	assert.Check(t, is.Error(err, "node h2: host port 8080/tcp taken by web.1"))
}

func TestHostPortsFixedOnly(t *testing.T) {
	pm := network.PortMap{
		network.MustParsePort("8080/tcp"): {
			{HostIP: netip.IPv4Unspecified(), HostPort: "18080"},
			{HostIP: netip.IPv6Unspecified(), HostPort: "18080"},
		},
		network.MustParsePort("53/udp"):   {{HostPort: "5353"}},
		network.MustParsePort("9000/tcp"): {{HostPort: ""}},          // the engine picks
		network.MustParsePort("9001/tcp"): {{HostPort: "0"}},         // so too
		network.MustParsePort("9002/tcp"): {{HostPort: "7000-7010"}}, // one of a range, at start
	}
	assert.Check(t, is.DeepEqual(hostPorts(pm, "web.1"), []api.HostPort{hp(5353, "udp", "web.1"), hp(18080, "tcp", "web.1")}))
	assert.Check(t, is.Len(hostPorts(nil, "web.1"), 0))
}

func TestServicePortsMatchCreate(t *testing.T) {
	svc := spec.Service{Name: "web", Image: "nginx", Ports: []spec.Port{
		{Host: 18080, Container: 8080, Protocol: "tcp"}, {Container: 9000, Protocol: "tcp"}, {Host: 5353, Container: 53, Protocol: "udp"},
	}}
	assert.Check(t, is.DeepEqual(ServicePorts(svc), []api.HostPort{hp(18080, "tcp", ""), hp(5353, "udp", "")}))
	// What create gives the engine is what the ledger reads back.
	opts, err := createOptions(api.CreateRequest{Name: "web.1", Replica: 1, Network: "fleet", Service: svc}, cpuset.Set{})
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(hostPorts(opts.HostConfig.PortBindings, ""), []api.HostPort{hp(5353, "udp", ""), hp(18080, "tcp", "")}))
}

func TestContainerPorts(t *testing.T) {
	ctr := func(name, status string, lbl map[string]string) container.InspectResponse {
		return container.InspectResponse{
			Name:   "/" + name,
			State:  &container.State{Status: container.ContainerState(status)},
			Config: &container.Config{Labels: lbl},
			HostConfig: &container.HostConfig{PortBindings: network.PortMap{
				network.MustParsePort("80/tcp"): {{HostPort: "8080"}},
			}},
		}
	}
	fleet := map[string]string{labels.Service: "web"}
	holder := map[string]string{labels.NetnsOf: "web.2"}
	for _, tc := range []struct {
		name string
		c    container.InspectResponse
		want []api.HostPort
	}{
		{"fleet, running", ctr("web.1", "running", fleet), []api.HostPort{hp(8080, "tcp", "web.1")}},
		{"fleet, stopped: still a replica", ctr("web.1", "exited", fleet), []api.HostPort{hp(8080, "tcp", "web.1")}},
		{"other, running", ctr("nginx", "running", nil), []api.HostPort{hp(8080, "tcp", "nginx")}},
		{"other, created", ctr("nginx", "created", nil), []api.HostPort{hp(8080, "tcp", "nginx")}},
		{"other, stopped", ctr("nginx", "exited", nil), nil},
		{"holder: its container's", ctr("web.2.netns", "running", holder), []api.HostPort{hp(8080, "tcp", "web.2")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Check(t, is.DeepEqual(containerPorts(tc.c), tc.want))
		})
	}
}
