package commands

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestInitOptionsValidate(t *testing.T) {
	ok := initOptions{network: "fleet", subnet: "10.215.0.0/24", agentPort: 7477}
	b, err := ok.validate()
	assert.NilError(t, err)
	assert.Check(t, is.Equal(b.Subnet.String(), "10.215.0.0/24"))

	noSubnet := ok
	noSubnet.subnet = ""
	b, err = noSubnet.validate()
	assert.NilError(t, err)
	assert.Check(t, !b.Subnet.IsValid())

	for _, tc := range []struct {
		mutate func(*initOptions)
		want   string
	}{
		{func(o *initOptions) { o.subnet = "10.0.0.0/33" }, `--subnet "10.0.0.0/33"`},
		{func(o *initOptions) { o.subnet = "fe80::/64" }, `--subnet "fe80::/64"`},
		{func(o *initOptions) { o.subnet = "10.0.0.1/24" }, "did you mean 10.0.0.0/24"},
		{func(o *initOptions) { o.subnet = "10.0.0.0/30" }, "too small"},
		{func(o *initOptions) { o.network = "" }, "--network"},
		{func(o *initOptions) { o.network = "a/b" }, `--network "a/b"`},
		{func(o *initOptions) { o.agentPort = 0 }, "--agent-port 0"},
		{func(o *initOptions) { o.agentPort = 65536 }, "--agent-port 65536"},
	} {
		o := ok
		tc.mutate(&o)
		_, err := o.validate()
		assert.Check(t, is.ErrorContains(err, tc.want))
	}
}
