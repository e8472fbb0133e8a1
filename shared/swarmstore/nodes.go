package swarmstore

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/spec"
)

// Node is a swarm node as the fleet sees it.
type Node struct {
	ID           string `json:"id"`
	Hostname     string `json:"hostname"`
	Role         string `json:"role"`
	Leader       bool   `json:"leader,omitempty"`
	State        string `json:"state"`
	Availability string `json:"availability"`
	Addr         string `json:"addr"`
	// AgentPort is 0 on a node where init has not installed the agent.
	AgentPort int `json:"agentPort,omitempty"`
	// HostCaps are the capabilities the agent asks for that the node's
	// root has, as its agent reported them (nil: not known yet).
	HostCaps []string `json:"hostCaps,omitempty"`
	// Labels (the swarm node's, docker node update --label-add) and its
	// platform are for placement constraints (Facts), not shown.
	Labels map[string]string `json:"-"`
	OS     string            `json:"-"`
	Arch   string            `json:"-"`
}

// Facts are what placement constraints test of the node.
func (n Node) Facts() spec.NodeFacts {
	return spec.NodeFacts{Hostname: n.Hostname, ID: n.ID, Role: n.Role, Labels: n.Labels, OS: n.OS, Arch: n.Arch}
}

// Nodes lists the swarm's nodes, sorted by hostname.
func Nodes(ctx context.Context, c client.APIClient) ([]Node, error) {
	res, err := c.NodeList(ctx, client.NodeListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing swarm nodes: %w", err)
	}
	out := make([]Node, 0, len(res.Items))
	for _, n := range res.Items {
		out = append(out, fromSwarmNode(n))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Hostname < out[j].Hostname })
	return out, nil
}

// FindNode picks the node named by hostname or by a prefix of its ID;
// none is errdefs.ErrNotFound, several errdefs.ErrInvalidArgument.
func FindNode(nodes []Node, name string) (Node, error) {
	var match []Node
	for _, n := range nodes {
		if n.Hostname == name || n.ID == name {
			return n, nil
		}
		if len(name) >= 3 && len(n.ID) >= len(name) && n.ID[:len(name)] == name {
			match = append(match, n)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return Node{}, errdefs.ErrNotFound.WithMessage(fmt.Sprintf("no node named %q in the fleet", name))
	default:
		return Node{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("node ID prefix %q is ambiguous", name))
	}
}

// SetAgentPort records on the swarm node where its agent listens.
func SetAgentPort(ctx context.Context, c client.APIClient, nodeID string, port int) error {
	res, err := c.NodeInspect(ctx, nodeID, client.NodeInspectOptions{})
	if err != nil {
		return err
	}
	spec := res.Node.Spec
	if spec.Labels[labels.AgentPort] == strconv.Itoa(port) {
		return nil
	}
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	spec.Labels[labels.AgentPort] = strconv.Itoa(port)
	_, err = c.NodeUpdate(ctx, nodeID, client.NodeUpdateOptions{Version: res.Node.Version, Spec: spec})
	return err
}

// SetAvailability sets a node's swarm availability (swarm.NodeAvailability:
// active, pause or drain), as `docker node update --availability` does:
// the fleet's scheduler places nothing on a node that is not active
// (scheduler.NodeOf), for create, scale, migrate and relocation alike.
// changed is false when the node had it already.
func SetAvailability(ctx context.Context, c client.APIClient, nodeID string, availability swarm.NodeAvailability) (changed bool, err error) {
	res, err := c.NodeInspect(ctx, nodeID, client.NodeInspectOptions{})
	if err != nil {
		return false, err
	}
	spec := res.Node.Spec
	if spec.Availability == availability {
		return false, nil
	}
	spec.Availability = availability
	if _, err := c.NodeUpdate(ctx, nodeID, client.NodeUpdateOptions{Version: res.Node.Version, Spec: spec}); err != nil {
		return false, fmt.Errorf("setting node %s %s: %w", res.Node.Description.Hostname, availability, err)
	}
	return true, nil
}

func fromSwarmNode(n swarm.Node) Node {
	out := Node{
		ID:           n.ID,
		Hostname:     n.Description.Hostname,
		Role:         string(n.Spec.Role),
		State:        string(n.Status.State),
		Availability: string(n.Spec.Availability),
		Addr:         n.Status.Addr,
		Labels:       n.Spec.Labels,
		OS:           n.Description.Platform.OS,
		Arch:         n.Description.Platform.Architecture,
	}
	if m := n.ManagerStatus; m != nil {
		out.Leader = m.Leader
		// Some engines report a manager's Status.Addr as 0.0.0.0.
		if host, _, err := net.SplitHostPort(m.Addr); err == nil && (out.Addr == "" || out.Addr == "0.0.0.0") {
			out.Addr = host
		}
	}
	if p, err := strconv.Atoi(n.Spec.Labels[labels.AgentPort]); err == nil {
		out.AgentPort = p
	}
	out.HostCaps = hostCaps(n.Spec.Labels)
	return out
}
