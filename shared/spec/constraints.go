package spec

import (
	"fmt"
	"regexp"
	"strings"
)

// Placement constraints, written as docker service create --constraint
// and a Compose file's deploy.placement.constraints write them, and
// matched as the swarm matches them: KEY==VALUE or KEY!=VALUE, values
// compared in any case, every constraint required.

// ConstraintsField names the constraints in errors: the key a Compose or
// stack file gives them under.
const ConstraintsField = "deploy.placement.constraints"

// The keys a constraint may test.
const (
	ConstraintHostname = "node.hostname"
	ConstraintID       = "node.id"
	ConstraintRole     = "node.role"
	ConstraintOS       = "node.platform.os"
	ConstraintArch     = "node.platform.arch"
	// ConstraintLabel prefixes a swarm node label (docker node update
	// --label-add), whose name is compared as written.
	ConstraintLabel = "node.labels."
)

// Constraint is one placement constraint.
type Constraint struct {
	// Key is one of the Constraint* keys, or ConstraintLabel and a label.
	Key string
	// Not is != : the node's value must differ (a node without the label
	// or value matches).
	Not   bool
	Value string
}

// NodeFacts are what constraints are matched against: a swarm node's
// hostname, ID, role (manager or worker), labels and platform, as the
// swarm reports them (its Description.Platform: os linux, arch x86_64).
type NodeFacts struct {
	Hostname string
	ID       string
	Role     string
	Labels   map[string]string
	OS       string
	Arch     string
}

// swarmkit's own patterns: a value may not hold what could be an operator
// one day (<, >, ~, =, !).
var (
	constraintKey   = regexp.MustCompile(`^(?i)[a-z_][a-z0-9\-_.]+$`)
	constraintValue = regexp.MustCompile(`^(?i)[a-z0-9:\-_\s\.\*\(\)\?\+\[\]\\\^\$\|\/]+$`)
)

const constraintKeys = "node.hostname, node.id, node.role, node.labels.KEY, node.platform.os or node.platform.arch"

// ParseConstraint reads one constraint ("node.labels.disk == ssd"). Its
// errors quote the constraint and say what to write instead.
func ParseConstraint(s string) (Constraint, error) {
	var c Constraint
	// As swarmkit: == is looked for first, so "a!=b==c" has the key "a!=b".
	k, v, ok := strings.Cut(s, "==")
	if !ok {
		k, v, ok = strings.Cut(s, "!=")
		c.Not = true
	}
	if !ok {
		return c, fmt.Errorf("%q: write KEY==VALUE or KEY!=VALUE, such as node.labels.disk==ssd", s)
	}
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	lower := strings.ToLower(k)
	switch {
	case !constraintKey.MatchString(k):
		return c, fmt.Errorf("%q: %q is not a key: use %s", s, k, constraintKeys)
	case strings.HasPrefix(lower, ConstraintLabel):
		label := k[len(ConstraintLabel):]
		if label == "" {
			return c, fmt.Errorf("%q: name the label: node.labels.KEY", s)
		}
		c.Key = ConstraintLabel + label
	case strings.HasPrefix(lower, "engine.labels."):
		return c, fmt.Errorf("%q: engine labels are not read by docker fleet: label the node with docker node update --label-add KEY=VALUE and use node.labels.KEY", s)
	case lower == ConstraintHostname, lower == ConstraintID, lower == ConstraintRole, lower == ConstraintOS, lower == ConstraintArch:
		c.Key = lower
	default:
		return c, fmt.Errorf("%q: unknown key %s: use %s", s, k, constraintKeys)
	}
	switch {
	case v == "":
		return c, fmt.Errorf("%q: no value after the operator", s)
	case !constraintValue.MatchString(v):
		return c, fmt.Errorf("%q: the value %q has characters a constraint may not hold (letters, digits, spaces and :-_.*()?+[]\\^$|/ only)", s, v)
	case c.Key == ConstraintRole && !strings.EqualFold(v, "manager") && !strings.EqualFold(v, "worker"):
		return c, fmt.Errorf("%q: a node's role is manager or worker", s)
	}
	c.Value = v
	return c, nil
}

// ParseConstraints reads each constraint; the error names the first one
// at fault.
func ParseConstraints(list []string) ([]Constraint, error) {
	out := make([]Constraint, 0, len(list))
	for _, s := range list {
		c, err := ParseConstraint(s)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (c Constraint) String() string {
	if c.Not {
		return c.Key + "!=" + c.Value
	}
	return c.Key + "==" + c.Value
}

// fact is the node's value for the key, and whether it has one.
func (c Constraint) fact(n NodeFacts) (string, bool) {
	var v string
	switch c.Key {
	case ConstraintHostname:
		v = n.Hostname
	case ConstraintID:
		v = n.ID
	case ConstraintRole:
		v = n.Role
	case ConstraintOS:
		v = n.OS
	case ConstraintArch:
		v = n.Arch
	default:
		l, ok := n.Labels[strings.TrimPrefix(c.Key, ConstraintLabel)]
		return l, ok
	}
	return v, v != ""
}

// Match says whether the node meets the constraint.
func (c Constraint) Match(n NodeFacts) bool {
	v, ok := c.fact(n)
	return (ok && strings.EqualFold(v, c.Value)) != c.Not
}

// Mismatch says what the node has that fails the constraint, as the
// object of "has" ("no such label", "disk=hdd", "role worker"), or ""
// if it matches.
func (c Constraint) Mismatch(n NodeFacts) string {
	if c.Match(n) {
		return ""
	}
	v, ok := c.fact(n)
	label, isLabel := strings.CutPrefix(c.Key, ConstraintLabel)
	what := strings.TrimPrefix(strings.TrimPrefix(c.Key, "node."), "platform.")
	switch {
	case !ok && isLabel:
		return "no such label"
	case !ok:
		return "no known " + what
	case isLabel:
		return label + "=" + v
	}
	return what + " " + v
}

// Unmatched is the first constraint the node fails and what it has
// instead (Mismatch), or ok when it meets them all.
func Unmatched(cs []Constraint, n NodeFacts) (c Constraint, has string, ok bool) {
	for _, c := range cs {
		if has := c.Mismatch(n); has != "" {
			return c, has, false
		}
	}
	return Constraint{}, "", true
}

// SetConstraints gives s the placement constraints given. One
// node.hostname==NAME, when s names no node yet, is the node every
// replica goes to (Node, as --node, which migrate, scale and describe
// know, and which a cold relocation lets go of when that node dies);
// every other constraint is kept for the scheduler, written as the fleet
// writes it, and one that does not parse is kept as given for Validate
// to name.
func (s *Service) SetConstraints(list []string) {
	pinned := -1
	for i, con := range list {
		c, err := ParseConstraint(con)
		if err != nil || c.Key != ConstraintHostname || c.Not {
			continue
		}
		if pinned >= 0 || s.Node != "" {
			// Two nodes asked for: each stays a constraint, and the
			// scheduler says that no node is both.
			pinned = -1
			break
		}
		pinned = i
	}
	for i, con := range list {
		c, err := ParseConstraint(con)
		switch {
		case err != nil:
			s.Constraints = append(s.Constraints, strings.TrimSpace(con))
		case i == pinned:
			s.Node = c.Value
		default:
			s.Constraints = append(s.Constraints, c.String())
		}
	}
}
