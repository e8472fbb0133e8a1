package deploy

import (
	"net/netip"
	"testing"

	"github.com/moby/moby/api/types/network"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
)

// TestFilesOf: each replica's request carries the contents of its own
// service's secrets and configs, once each, and nothing of another's.
func TestFilesOf(t *testing.T) {
	contents := []api.FileContent{
		{Kind: spec.SecretFile, Name: "pw", Content: []byte("hunter2")},
		{Kind: spec.ConfigFile, Name: "pw", Content: []byte("a config of the same name")},
		{Kind: spec.SecretFile, Name: "other", Content: []byte("not web's")},
	}
	web := spec.Service{Name: "web", Attachments: spec.Attachments{
		Secrets: []spec.FileMount{{Name: "pw", Target: "/run/secrets/pw"}, {Name: "pw", Target: "/run/secrets/again"}},
	}}
	got, err := filesOf(web, contents)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(got, contents[:1]))

	web.Configs = []spec.FileMount{{Name: "missing", Target: "/etc/missing"}}
	_, err = filesOf(web, contents)
	assert.Check(t, is.ErrorContains(err, "service web: no content for its config missing"))

	got, err = filesOf(spec.Service{Name: "plain"}, contents)
	assert.NilError(t, err)
	assert.Check(t, is.Len(got, 0))
}

// TestUsable: a network already there is used only if fleet containers
// can join it and it has the subnets the file asks for.
func TestUsable(t *testing.T) {
	subnet := netip.MustParsePrefix("10.217.1.0/24")
	want := spec.Network{Key: "front", Name: "shop_front", IPAM: []spec.IPAMPool{{Subnet: subnet}}}
	have := network.Network{Name: "shop_front", Driver: "overlay", Scope: "swarm", Attachable: true,
		IPAM: network.IPAM{Config: []network.IPAMConfig{{Subnet: subnet}}}}
	assert.Check(t, usable(want, have))

	other := have
	other.IPAM.Config = []network.IPAMConfig{{Subnet: netip.MustParsePrefix("10.0.9.0/24")}}
	assert.Check(t, is.ErrorContains(usable(want, other), "exists without subnet 10.217.1.0/24"))
	bridge := have
	bridge.Driver, bridge.Scope = "bridge", "local"
	assert.Check(t, is.ErrorContains(usable(want, bridge), "no attachable overlay network"))
	closed := have
	closed.Attachable = false
	assert.Check(t, is.ErrorContains(usable(want, closed), "attachable false"))
}
