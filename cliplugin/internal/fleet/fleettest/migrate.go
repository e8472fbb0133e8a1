package fleettest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"

	"github.com/docker-fleet/fleet/shared/agentclient"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
)

// Expect takes an announced migration, as a destination does.
func (n *Node) Expect(_ context.Context, e api.Expectation) error {
	if err := n.enter("Expect"); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.expected[e.ID] = e
	return nil
}

// Migrate moves a container to the node of its fleet req names, which
// must expect it, booking its cores, memory and host ports there: at once,
// with no checkpoint, one event carrying the result.
func (n *Node) Migrate(_ context.Context, req api.MigrateRequest, onEvent func(api.MigrateEvent)) (*api.MigrateResult, error) {
	if err := n.enter("Migrate"); err != nil {
		return nil, err
	}
	t0 := time.Now()
	c, ok := n.Container(req.Container)
	if !ok {
		return nil, n.notFound(req.Container)
	}
	if p := n.problemsOf(c.Name); len(p) > 0 {
		return nil, errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf("%s cannot migrate, it keeps running on %s untouched: %s",
			c.Name, n.Swarm.Hostname, strings.Join(p, "; ")))
	}
	var dst *Node
	if n.fleet != nil {
		dst = n.fleet.Node(req.To)
	}
	if dst == nil || dst == n {
		return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("no destination %s for %s", req.To, c.Name))
	}
	n.mu.Lock()
	var ports []api.HostPort
	for _, p := range n.ports {
		if p.Container == c.Name {
			ports = append(ports, p)
		}
	}
	n.mu.Unlock()
	moved, err := dst.receive(req.ID, c, ports)
	if err != nil {
		return nil, err
	}
	if err := n.drop(c.Name); err != nil {
		return nil, err
	}
	res := api.MigrateResult{Container: c.Name, From: n.Swarm.Hostname, To: dst.Swarm.Hostname, Cpuset: moved.Cpuset,
		Total: time.Since(t0).Seconds()}
	n.mu.Lock()
	n.migrated[req.ID] = res
	n.mu.Unlock()
	if onEvent != nil {
		onEvent(api.MigrateEvent{Phase: api.PhaseDone, Result: &res})
	}
	return &res, nil
}

// receive makes a migrated container here, as a destination does.
func (n *Node) receive(id string, c api.FleetContainer, ports []api.HostPort) (api.FleetContainer, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if e, ok := n.expected[id]; !ok || e.Container != c.Name {
		return c, errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf("%s does not expect migration %s of %s", n.Swarm.Hostname, id, c.Name))
	}
	delete(n.expected, id)
	if _, ok := n.containers[c.Name]; ok {
		return c, errdefs.ErrConflict.WithMessage(fmt.Sprintf("a container named %s already exists on node %s", c.Name, n.Swarm.Hostname))
	}
	if c.Exclusive {
		set, _ := cpuset.Parse(c.Cpuset)
		got, err := n.take(len(set), c.Name)
		if err != nil {
			return c, err
		}
		c.Cpuset = got.String()
	}
	if free := n.memTotal - n.memReserved(); c.Memory > free {
		n.hold(nil, c.Name)
		return c, errdefs.ErrConflict.WithMessage(fmt.Sprintf("node %s has not the memory for %s", n.Swarm.Hostname, c.Name))
	}
	if err := n.portsFree(ports); err != nil {
		n.hold(nil, c.Name)
		return c, err
	}
	n.made++
	c.ID, c.Node = fmt.Sprintf("%s-%d", n.Swarm.Hostname, n.made), n.Swarm.Hostname
	n.containers[c.Name] = &c
	n.ports = append(n.ports, ports...)
	n.images[c.Image] = ImageID(c.Image)
	return c, nil
}

// Follow replays the end of a migration this node was the source of.
func (n *Node) Follow(_ context.Context, id string, onEvent func(api.MigrateEvent)) (*api.MigrateResult, error) {
	if err := n.enter("Follow"); err != nil {
		return nil, err
	}
	n.mu.Lock()
	res, ok := n.migrated[id]
	n.mu.Unlock()
	if !ok {
		return nil, errdefs.ErrNotFound.WithMessage("no migration " + id + " on " + n.Swarm.Hostname)
	}
	if onEvent != nil {
		onEvent(api.MigrateEvent{Phase: api.PhaseDone, Result: &res})
	}
	return &res, nil
}

// Check finds a container checkpointable unless Uncheckpointable said
// otherwise.
func (n *Node) Check(_ context.Context, req api.CheckRequest) (api.CheckResult, error) {
	if err := n.enter("Check"); err != nil {
		return api.CheckResult{}, err
	}
	if _, ok := n.Container(req.Container); !ok {
		return api.CheckResult{}, n.notFound(req.Container)
	}
	p := n.problemsOf(req.Container)
	return api.CheckResult{Container: req.Container, Node: n.Swarm.Hostname, OK: len(p) == 0, Problems: p}, nil
}

// Uncheckpointable has the container hold what CRIU cannot checkpoint
// (problems, in the agent's words): Check says so, and Migrate refuses it
// before anything moves, as the agent's precheck does.
func (n *Node) Uncheckpointable(name string, problems ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.problems[name] = problems
}

func (n *Node) problemsOf(name string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.problems[name])
}

// Images says which images the node has; with req.Pull it pulls the others
// first, which always works (a test fails the call to say otherwise).
func (n *Node) Images(_ context.Context, req api.ImagesRequest) (api.ImagesResponse, error) {
	if err := n.enter("Images"); err != nil {
		return api.ImagesResponse{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	res := api.ImagesResponse{Have: map[string]string{}}
	for _, i := range req.Images {
		if _, ok := n.images[i]; !ok && req.Pull {
			n.images[i] = ImageID(i)
		}
		if id, ok := n.images[i]; ok {
			res.Have[i] = id
		}
	}
	return res, nil
}

// ExpectImage has the node take an image of that ID.
func (n *Node) ExpectImage(_ context.Context, t api.ImageTransfer) error {
	if err := n.enter("ExpectImage"); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.comingIn[t.ID] = true
	return nil
}

// SendImage gives an image of the node to another of its fleet, which
// must expect it.
func (n *Node) SendImage(_ context.Context, t api.ImageTransfer) error {
	if err := n.enter("SendImage"); err != nil {
		return err
	}
	n.mu.Lock()
	has := n.images[t.Image] == t.ID
	n.mu.Unlock()
	if !has {
		return errdefs.ErrNotFound.WithMessage(fmt.Sprintf("no image %s of ID %s on %s", t.Image, t.ID, n.Swarm.Hostname))
	}
	var dst *Node
	if n.fleet != nil {
		dst = n.fleet.Node(t.Node)
	}
	if dst == nil {
		return errdefs.ErrUnavailable.WithMessage("no node " + t.Node)
	}
	dst.mu.Lock()
	defer dst.mu.Unlock()
	if !dst.comingIn[t.ID] {
		return errdefs.ErrPermissionDenied.WithMessage(fmt.Sprintf("%s expects no image %s from %s", t.Node, t.ID, n.Swarm.Hostname))
	}
	delete(dst.comingIn, t.ID)
	dst.images[t.Image] = t.ID
	return nil
}

// Logs has no logs to give: a LogStream is the real client's.
func (n *Node) Logs(_ context.Context, name string, _ api.LogsQuery) (*agentclient.LogStream, error) {
	if err := n.enter("Logs"); err != nil {
		return nil, err
	}
	return nil, errdefs.ErrNotImplemented.WithMessage("fleettest: no logs of " + name)
}

// DropLogs has no kept logs to drop; the calls are counted.
func (n *Node) DropLogs(_ context.Context, _ string) error {
	return n.enter("DropLogs")
}

// ImagesOf are the images the node's engine has.
func (n *Node) ImagesOf() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for i := range n.images {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}
