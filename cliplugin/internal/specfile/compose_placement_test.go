package specfile

import (
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestComposePlacementConstraints(t *testing.T) {
	for _, tc := range []struct {
		cons string // the YAML list
		node string
		want []string
	}{
		{`["node.hostname == h2"]`, "h2", nil},
		{`["node.hostname!=h2"]`, "", []string{"node.hostname!=h2"}},
		{`["node.labels.disk == ssd", "node.role==worker"]`, "", []string{"node.labels.disk==ssd", "node.role==worker"}},
		{`["node.hostname==h2", "node.labels.disk==ssd"]`, "h2", []string{"node.labels.disk==ssd"}},
		{`["node.hostname==h1", "node.hostname==h2"]`, "", []string{"node.hostname==h1", "node.hostname==h2"}},
		{`["node.id==2ivku8v2gvtg4", "node.platform.os==linux", "node.platform.arch!=aarch64"]`, "",
			[]string{"node.id==2ivku8v2gvtg4", "node.platform.os==linux", "node.platform.arch!=aarch64"}},
		{`["Node.Labels.Zone==eu"]`, "", []string{"node.labels.Zone==eu"}},
	} {
		r, err := parse(t, "services:\n  a:\n    image: x\n    deploy: {placement: {constraints: "+tc.cons+"}}\n")
		assert.Assert(t, err, tc.cons)
		s := r.Services[0]
		assert.Check(t, is.Equal(s.Node, tc.node), tc.cons)
		assert.Check(t, is.DeepEqual(s.Constraints, tc.want), tc.cons)
	}
}

func TestComposePlacementConstraintsRefused(t *testing.T) {
	at := "services.a.deploy.placement.constraints: "
	for cons, want := range map[string]string{
		`["node.labels.disk=ssd"]`:                     at + `"node.labels.disk=ssd": write KEY==VALUE or KEY!=VALUE`,
		`["node.role==leader"]`:                        at + `"node.role==leader": a node's role is manager or worker`,
		`["engine.labels.os==ubuntu"]`:                 at + `"engine.labels.os==ubuntu": engine labels are not read by docker fleet`,
		`["node.hostname==h2", "node.ip==10.0.0.0/8"]`: at + `"node.ip==10.0.0.0/8": unknown key node.ip`,
	} {
		_, err := parse(t, "services:\n  a:\n    image: x\n    deploy: {placement: {constraints: "+cons+"}}\n")
		assert.Check(t, is.ErrorContains(err, want), cons)
		if err != nil {
			assert.Check(t, is.Equal(strings.Count(err.Error(), "\n"), 0), "one line: %s", err)
		}
	}
}
