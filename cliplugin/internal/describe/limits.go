package describe

import (
	"slices"
	"strings"

	"github.com/docker-fleet/fleet/shared/api"
)

// Limits are what migration cannot do on the nodes even when they are
// ready, with the nodes each applies to ("h1, h2: root lacks …").
func Limits(nodes []NodeView) []string {
	var ls []NodeLimits
	for _, n := range nodes {
		if n.Info != nil {
			ls = append(ls, NodeLimits{n.Hostname, n.Info.Migration.Limits})
		}
	}
	return GroupLimits(ls)
}

// NodeLimits are one node's Readiness.Limits.
type NodeLimits struct {
	Node   string
	Limits []string
}

// GroupLimits names each limit once, after the nodes it applies to.
func GroupLimits(ls []NodeLimits) []string {
	var order []string
	nodes := map[string][]string{}
	for _, n := range ls {
		for _, l := range n.Limits {
			if _, ok := nodes[l]; !ok {
				order = append(order, l)
			}
			nodes[l] = append(nodes[l], n.Node)
		}
	}
	out := make([]string, 0, len(order))
	for _, l := range order {
		out = append(out, strings.Join(nodes[l], ", ")+": "+l)
	}
	return out
}

// capsLine says which of the optional capabilities the agent runs with,
// and which the host's root lacks.
func capsLine(c api.Capabilities) string {
	if len(c.Agent) == 0 {
		return "unknown (an older agent)"
	}
	var has, lacks, notGiven []string
	for _, o := range api.OptionalCaps {
		switch {
		case slices.Contains(c.Agent, o):
			has = append(has, o)
		case len(c.Host) > 0 && !slices.Contains(c.Host, o):
			lacks = append(lacks, o)
		default:
			notGiven = append(notGiven, o)
		}
	}
	s := "the required ones"
	if len(has) > 0 {
		s += ", " + strings.Join(has, ", ")
	}
	if len(lacks) > 0 {
		s += "; root lacks " + strings.Join(lacks, ", ")
	}
	if len(notGiven) > 0 {
		s += "; the agent lacks " + strings.Join(notGiven, ", ") + " (`docker fleet init` installs it with them)"
	}
	return s
}
