// Package fleettest is a fleet in memory for the CLI's tests: nodes whose
// agents (fleet.Agent) book cores, memory and host ports as the real agent
// does, refuse with the same kinds (errdefs.ErrConflict for what is taken,
// ErrNotFound for a missing container), and fail where a test says.
package fleettest

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strconv"

	"github.com/containerd/errdefs"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// Fleet is fake nodes, in the order the swarm lists them.
type Fleet struct {
	Nodes []*Node
}

// New makes a fleet of nodes; the first is its swarm's manager and
// leader unless one of them is a manager already.
func New(nodes ...*Node) *Fleet {
	f := &Fleet{Nodes: nodes}
	manager := false
	for i, n := range nodes {
		n.fleet = f
		n.Swarm.Addr = "10.0.0." + strconv.Itoa(i+1)
		manager = manager || n.Swarm.Role == "manager"
	}
	if !manager && len(nodes) > 0 {
		nodes[0].Swarm.Role, nodes[0].Swarm.Leader = "manager", true
	}
	return f
}

// Node is the node of that hostname, or nil.
func (f *Fleet) Node(name string) *Node {
	for _, n := range f.Nodes {
		if n.Swarm.Hostname == name {
			return n
		}
	}
	return nil
}

// Inventory reads every node's ledger, as fleet.Fleet.Inventory does: a
// node whose agent fails has that error in its NodeState.
func (f *Fleet) Inventory(ctx context.Context) (fleet.Inventory, error) {
	nodes := make([]swarmstore.Node, 0, len(f.Nodes))
	for _, n := range f.Nodes {
		nodes = append(nodes, n.Swarm)
	}
	return fleet.NewInventory(ctx, nodes, func(sn swarmstore.Node) (fleet.Agent, error) {
		if n := f.Node(sn.Hostname); n != nil {
			return n, nil
		}
		return nil, errdefs.ErrNotFound.WithMessage("no fake node " + sn.Hostname)
	}), nil
}

// Containers are every node's fleet containers, by name.
func (f *Fleet) Containers() []string {
	var out []string
	for _, n := range f.Nodes {
		out = append(out, n.Containers()...)
	}
	sort.Strings(out)
	return out
}

// hook is what the nth call of a method does first.
type hook struct {
	nth int // 0: every call
	do  func() error
}

// agentMethods are the methods a hook may name: the Agent's.
var agentMethods = reflect.TypeFor[fleet.Agent]()

// Fail has the nth call of method on this node (1: its first; 0: every
// one) fail with err, changing nothing.
func (n *Node) Fail(method string, nth int, err error) {
	n.OnCall(method, nth, func() error { return err })
}

// OnCall runs do at the nth call of method (1: the first; 0: every one)
// before the call does anything: a test makes a race happen there
// (another command taking the node's cores), or fails the call with the
// error do returns. do may call the node.
func (n *Node) OnCall(method string, nth int, do func() error) {
	if _, ok := agentMethods.MethodByName(method); !ok {
		panic("fleettest: no agent method " + method)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.hooks[method] = append(n.hooks[method], hook{nth: nth, do: do})
}

// SetDown has every call fail with err, as an agent that does not answer
// (errdefs.ErrUnavailable, say); nil brings it back.
func (n *Node) SetDown(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.down = err
}

// Calls is how many times method was called on this node.
func (n *Node) Calls(method string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls[method]
}

// enter counts a call of method and runs its hooks, outside the node's
// lock so that they may call it.
func (n *Node) enter(method string) error {
	n.mu.Lock()
	n.calls[method]++
	nth, down := n.calls[method], n.down
	var run []func() error
	for _, h := range n.hooks[method] {
		if h.nth == 0 || h.nth == nth {
			run = append(run, h.do)
		}
	}
	n.mu.Unlock()
	if down != nil {
		return down
	}
	for _, do := range run {
		if err := do(); err != nil {
			return err
		}
	}
	return nil
}

// notFound is the agent's refusal for a container it does not have.
func (n *Node) notFound(name string) error {
	return errdefs.ErrNotFound.WithMessage(fmt.Sprintf("no fleet container %s on %s", name, n.Swarm.Hostname))
}
