package spec

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestParseConstraint(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Constraint
	}{
		{"node.hostname==h1", Constraint{Key: ConstraintHostname, Value: "h1"}},
		{"node.hostname != h1", Constraint{Key: ConstraintHostname, Not: true, Value: "h1"}},
		{" node.id == 2ivku8v2gvtg4 ", Constraint{Key: ConstraintID, Value: "2ivku8v2gvtg4"}},
		{"Node.Role==Manager", Constraint{Key: ConstraintRole, Value: "Manager"}},
		{"node.role!=worker", Constraint{Key: ConstraintRole, Not: true, Value: "worker"}},
		{"node.labels.disk==ssd", Constraint{Key: "node.labels.disk", Value: "ssd"}},
		{"NODE.LABELS.Zone==eu-west/1", Constraint{Key: "node.labels.Zone", Value: "eu-west/1"}},
		{"node.labels.com.example.tier!=db", Constraint{Key: "node.labels.com.example.tier", Not: true, Value: "db"}},
		{"node.platform.os==linux", Constraint{Key: ConstraintOS, Value: "linux"}},
		{"node.platform.arch==x86_64", Constraint{Key: ConstraintArch, Value: "x86_64"}},
	} {
		c, err := ParseConstraint(tc.in)
		assert.Check(t, err, tc.in)
		assert.Check(t, is.DeepEqual(c, tc.want), tc.in)
	}
}

func TestParseConstraintRefuses(t *testing.T) {
	for in, want := range map[string]string{
		"node.hostname=h1":         `"node.hostname=h1": write KEY==VALUE or KEY!=VALUE`,
		"node.hostname":            "write KEY==VALUE",
		"node.ip==10.0.0.1":        "unknown key node.ip: use node.hostname, node.id, node.role, node.labels.KEY",
		"engine.labels.os==ubuntu": "engine labels are not read by docker fleet",
		"node.labels.==x":          "name the label: node.labels.KEY",
		"==x":                      `"" is not a key`,
		"node.hostname==":          "no value after the operator",
		"node.hostname==a=b":       `the value "a=b" has characters`,
		"node.hostname!=<h1>":      "has characters a constraint may not hold",
		"node.role==leader":        "a node's role is manager or worker",
		"a!=b==c":                  `"a!=b" is not a key`,
	} {
		_, err := ParseConstraint(in)
		assert.Check(t, is.ErrorContains(err, want), in)
	}
}

func TestConstraintMatch(t *testing.T) {
	h1 := NodeFacts{Hostname: "h1", ID: "abc123", Role: "manager", OS: "linux", Arch: "x86_64",
		Labels: map[string]string{"disk": "ssd", "zone": ""}}
	for _, tc := range []struct {
		in  string
		has string // "" when it matches
	}{
		{"node.hostname==h1", ""},
		{"node.hostname==H1", ""},
		{"node.hostname!=h1", "hostname h1"},
		{"node.hostname==h2", "hostname h1"},
		{"node.id==abc123", ""},
		{"node.id==abc", "id abc123"},
		{"node.role==manager", ""},
		{"node.role==worker", "role manager"},
		{"node.platform.os==linux", ""},
		{"node.platform.os==windows", "os linux"},
		{"node.platform.arch==x86_64", ""},
		{"node.platform.arch==aarch64", "arch x86_64"},
		{"node.labels.disk==ssd", ""},
		{"node.labels.disk==SSD", ""},
		{"node.labels.disk==hdd", "disk=ssd"},
		{"node.labels.disk!=ssd", "disk=ssd"},
		{"node.labels.Disk==ssd", "no such label"},
		{"node.labels.gpu==yes", "no such label"},
		{"node.labels.gpu!=yes", ""},
	} {
		c, err := ParseConstraint(tc.in)
		assert.NilError(t, err)
		assert.Check(t, is.Equal(c.Match(h1), tc.has == ""), tc.in)
		assert.Check(t, is.Equal(c.Mismatch(h1), tc.has), tc.in)
	}
	// A node that reports no platform matches no == on it.
	c, _ := ParseConstraint("node.platform.os==linux")
	assert.Check(t, is.Equal(c.Mismatch(NodeFacts{Hostname: "h2"}), "no known os"))
}

func TestUnmatched(t *testing.T) {
	cs, err := ParseConstraints([]string{"node.role==worker", "node.labels.disk==ssd"})
	assert.NilError(t, err)
	_, _, ok := Unmatched(cs, NodeFacts{Role: "worker", Labels: map[string]string{"disk": "ssd"}})
	assert.Check(t, ok)
	c, has, ok := Unmatched(cs, NodeFacts{Role: "worker"})
	assert.Check(t, !ok)
	assert.Check(t, is.Equal(c.String(), "node.labels.disk==ssd"))
	assert.Check(t, is.Equal(has, "no such label"))

	_, err = ParseConstraints([]string{"node.role==worker", "node.rack==1"})
	assert.Check(t, is.ErrorContains(err, `"node.rack==1": unknown key`))
}

func TestValidateConstraints(t *testing.T) {
	s := Service{Name: "web", Image: "img", Replicas: 1, Constraints: []string{"node.labels.disk==ssd", "node.role!=manager"}}
	assert.NilError(t, s.Validate())
	s.Constraints = append(s.Constraints, "node.labels.disk=ssd")
	assert.Check(t, is.ErrorContains(s.Validate(), `deploy.placement.constraints: "node.labels.disk=ssd": write KEY==VALUE or KEY!=VALUE`))
}

func TestSetConstraints(t *testing.T) {
	for _, tc := range []struct {
		node string // before
		in   []string
		want Service
	}{
		{"", []string{"node.hostname == h2"}, Service{Node: "h2"}},
		{"", []string{"node.hostname==h2", "node.labels.disk == ssd"}, Service{Node: "h2", Constraints: []string{"node.labels.disk==ssd"}}},
		{"", []string{"node.hostname!=h2"}, Service{Constraints: []string{"node.hostname!=h2"}}},
		{"", []string{"node.hostname==h1", "node.hostname==h2"}, Service{Constraints: []string{"node.hostname==h1", "node.hostname==h2"}}},
		{"h1", []string{"node.hostname==h2"}, Service{Node: "h1", Constraints: []string{"node.hostname==h2"}}},
		{"", []string{" node.rack==1 "}, Service{Constraints: []string{"node.rack==1"}}},
		{"", nil, Service{}},
	} {
		s := Service{Node: tc.node}
		s.SetConstraints(tc.in)
		assert.Check(t, is.DeepEqual(s, tc.want), "%q", tc.in)
	}
}
