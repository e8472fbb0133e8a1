// Package bootstrap is what `docker fleet init` does: make the engine a swarm
// manager, create the CA and the overlay network, and put the agent on the
// manager and on every worker, joining those to the swarm. It checks every
// engine before it changes any, and undoes its changes on a worker that
// fails half-way.
package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/cliplugin/internal/agentinstall"
	"github.com/docker-fleet/fleet/cliplugin/internal/describe"
	"github.com/docker-fleet/fleet/cliplugin/internal/engines"
	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/agentclient"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/swarmstore"
	"github.com/docker-fleet/fleet/shared/version"
)

// How long a new node or agent may take to come up.
var (
	JoinTimeout  = 60 * time.Second
	AgentTimeout = 30 * time.Second
)

// Options are init's flags.
type Options struct {
	Network       string
	Subnet        netip.Prefix // zero: the swarm picks one
	AdvertiseAddr string
	AgentPort     int
	// FailoverAfter, when set, is how long a node may be silent before the
	// leader's agent relocates its containers (0: never); unset keeps what
	// the fleet has.
	FailoverAfter *time.Duration
	// Dial reaches the agents (nil: TCP to each agent's port); see package dial.
	Dial agentclient.DialFunc
	// Guard, when set, turns every node's guard on or off (init --guard);
	// unset keeps the fleet's.
	Guard *bool
	// RebalanceEvery and RebalanceMaxMoves, when set, are the automatic
	// rebalance's (init --rebalance-every, --rebalance-max-moves); unset
	// keeps the fleet's.
	RebalanceEvery    *time.Duration
	RebalanceMaxMoves *int
	// AllowDowngrade lets init replace agents that speak a newer API than
	// this docker-fleet with its own.
	AllowDowngrade bool
}

// Report is what init did and found.
type Report struct {
	ClusterID      string             `json:"clusterID"`
	SwarmCreated   bool               `json:"swarmCreated"`
	CACreated      bool               `json:"caCreated"`
	Network        swarmstore.Network `json:"network"`
	NetworkCreated bool               `json:"networkCreated"`
	// FailoverAfter is the fleet's grace period before relocation (0: off).
	FailoverAfter time.Duration `json:"failoverAfter"`
	// Guard: every node's engine consults its agent (init --guard).
	Guard bool `json:"guard"`
	// Rebalance is the fleet's automatic rebalance (Every 0: off).
	Rebalance swarmstore.AutoRebalance `json:"rebalance"`
	Nodes     []NodeReport             `json:"nodes"`
}

// NodeReport is one node's line of init's table.
type NodeReport struct {
	swarmstore.Node
	Context string    `json:"context,omitempty"`
	Joined  bool      `json:"joined,omitempty"`
	Agent   string    `json:"agent,omitempty"`
	Info    *api.Info `json:"info,omitempty"`
	Error   string    `json:"error,omitempty"`
}

type initializer struct {
	opts     Options
	manager  *engines.Engine
	workers  []*engines.Engine
	progress io.Writer

	mgrInfo system.Info
	fleet   *fleet.Fleet
	report  Report
	touched map[string]NodeReport // by node ID: what this run did
}

// Init brings the fleet to the state opts and the worker list describe.
// Running it again changes nothing; with new workers, it adds them.
func Init(ctx context.Context, manager *engines.Engine, workers []*engines.Engine, opts Options, progress io.Writer) (*Report, error) {
	in := &initializer{opts: opts, manager: manager, workers: workers, progress: progress, touched: map[string]NodeReport{}}
	if err := in.precheck(ctx); err != nil {
		return nil, err
	}
	in.learnSockets(ctx)
	if err := in.ensureSwarm(ctx); err != nil {
		return nil, err
	}
	ca, created, err := fleet.EnsureCA(ctx, manager.Client)
	if err != nil {
		return nil, err
	}
	in.report.CACreated = created
	if opts.FailoverAfter != nil {
		if err := swarmstore.SetFailoverAfter(ctx, manager.Client, *opts.FailoverAfter); err != nil {
			return nil, fmt.Errorf("recording --failover-after: %w", err)
		}
	}
	if in.report.FailoverAfter, err = swarmstore.FailoverAfter(ctx, manager.Client); err != nil {
		return nil, err
	}
	if opts.Guard != nil {
		if err := swarmstore.SetGuard(ctx, manager.Client, *opts.Guard); err != nil {
			return nil, fmt.Errorf("recording --guard: %w", err)
		}
	}
	if in.report.Guard, err = swarmstore.Guard(ctx, manager.Client); err != nil {
		return nil, err
	}
	if in.report.Rebalance, err = in.autoRebalance(ctx); err != nil {
		return nil, err
	}
	in.fleet = &fleet.Fleet{Manager: manager.Client, CA: ca, Dial: opts.Dial}
	in.report.Network, in.report.NetworkCreated, err = swarmstore.EnsureNetwork(ctx, manager.Client, opts.Network, opts.Subnet)
	if err != nil {
		return nil, err
	}
	if in.report.NetworkCreated {
		in.say("created overlay network %s (%s)", in.report.Network.Name, in.report.Network.Subnet)
	}
	if err := in.ensureRelay(ctx); err != nil {
		return nil, err
	}
	if err := in.checkDowngrade(ctx); err != nil {
		return nil, err
	}
	if err := in.ensureAgent(ctx, manager, in.mgrInfo); err != nil {
		return nil, fmt.Errorf("manager (docker context %q): %w", manager.Context, err)
	}
	for _, w := range workers {
		if err := in.addWorker(ctx, w); err != nil {
			return nil, fmt.Errorf("--worker %s: %w", w.Context, err)
		}
	}
	in.retireRelays(ctx)
	return &in.report, in.collect(ctx)
}

// precheck looks at every engine and every flag before anything changes.
func (in *initializer) precheck(ctx context.Context) error {
	if err := in.manager.Check(ctx); err != nil {
		return err
	}
	for _, w := range in.workers {
		if w.Context == in.manager.Context {
			return fmt.Errorf("--worker %s: that is the manager's own context", w.Context)
		}
		if err := w.Check(ctx); err != nil {
			return fmt.Errorf("--worker %s: %w", w.Context, err)
		}
	}
	info, err := in.manager.Client.Info(ctx, client.InfoOptions{})
	if err != nil {
		return err
	}
	in.mgrInfo = info.Info
	sw := info.Info.Swarm
	switch sw.LocalNodeState {
	case swarm.LocalNodeStateInactive:
	case swarm.LocalNodeStateActive:
		if !sw.ControlAvailable {
			return fmt.Errorf("docker context %q is a swarm worker, not a manager: run init against a manager's context", in.manager.Context)
		}
	default:
		return fmt.Errorf("docker context %q: the engine's swarm is %s (%s): fix the swarm first", in.manager.Context, sw.LocalNodeState, sw.Error)
	}
	for _, w := range in.workers {
		wi, err := w.Client.Info(ctx, client.InfoOptions{})
		if err != nil {
			return fmt.Errorf("--worker %s: %w", w.Context, err)
		}
		ws := wi.Info.Swarm
		switch {
		case ws.LocalNodeState == swarm.LocalNodeStateInactive:
		case ws.LocalNodeState == swarm.LocalNodeStateActive && in.isMember(ctx, ws.NodeID):
		case ws.LocalNodeState == swarm.LocalNodeStateActive:
			return fmt.Errorf("--worker %s: the engine is in another swarm: run `docker --context %s swarm leave` first", w.Context, w.Context)
		default:
			return fmt.Errorf("--worker %s: the engine's swarm is %s (%s): fix it first", w.Context, ws.LocalNodeState, ws.Error)
		}
	}
	return swarmstore.ValidateNetwork(ctx, in.manager.Client, in.opts.Network, in.opts.Subnet)
}

// learnSockets finds where each engine's API socket is on its host, which
// its agent mounts; one that cannot be found is assumed at the default,
// with a warning that says how to name it.
func (in *initializer) learnSockets(ctx context.Context) {
	for _, e := range append([]*engines.Engine{in.manager}, in.workers...) {
		how, err := e.LearnSocket(ctx)
		switch {
		case err != nil:
			in.say("warning: docker context %q does not say where its engine's API socket is on its host, and the probe did not find it (%v): assuming %s; name it with --engine-socket %s=PATH",
				e.Context, err, e.SocketOnHost(), e.Context)
		case how != "" && how != "kept from its agent":
			in.say("docker context %q: its engine's API socket is %s on its host (%s)", e.Context, e.SocketOnHost(), how)
		}
	}
}

// checkDowngrade refuses to replace agents that speak a newer API than
// this docker-fleet (someone upgraded the fleet from a newer one): that
// would take from the fleet what its users may already rely on. Agents
// that do not answer are not judged.
func (in *initializer) checkDowngrade(ctx context.Context) error {
	if in.opts.AllowDowngrade {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	infos, err := in.fleet.Infos(ctx)
	if err != nil {
		return err
	}
	var newer []string
	for _, n := range infos {
		if n.Err == nil && n.Info.API() > api.APIVersion {
			newer = append(newer, fmt.Sprintf("%s (agent %s, API %d)", n.Hostname, n.Info.AgentVersion, n.Info.API()))
		}
	}
	if len(newer) == 0 {
		return nil
	}
	return fmt.Errorf("%s: newer than this docker-fleet (%s, API %d), which would replace them with its older agent; "+
		"use the newer docker-fleet (docker fleet version shows both), or pass --allow-downgrade: %w",
		strings.Join(newer, ", "), version.Version, api.APIVersion, errdefs.ErrFailedPrecondition)
}

// isMember reports whether the manager's swarm has the node: a worker does
// not see its cluster's ID, so membership is asked of the manager.
func (in *initializer) isMember(ctx context.Context, nodeID string) bool {
	if in.mgrInfo.Swarm.LocalNodeState != swarm.LocalNodeStateActive {
		return false
	}
	_, err := in.manager.Client.NodeInspect(ctx, nodeID, client.NodeInspectOptions{})
	return err == nil
}

func (in *initializer) ensureSwarm(ctx context.Context) error {
	if in.mgrInfo.Swarm.LocalNodeState == swarm.LocalNodeStateActive {
		in.report.ClusterID = in.mgrInfo.Swarm.Cluster.ID
		return nil
	}
	_, err := in.manager.Client.SwarmInit(ctx, client.SwarmInitOptions{
		ListenAddr:    "0.0.0.0:2377",
		AdvertiseAddr: in.opts.AdvertiseAddr,
	})
	if err != nil {
		if strings.Contains(err.Error(), "advertise") {
			return fmt.Errorf("swarm init: %w (pass --advertise-addr)", err)
		}
		return fmt.Errorf("swarm init: %w", err)
	}
	info, err := in.manager.Client.Info(ctx, client.InfoOptions{})
	if err != nil {
		return err
	}
	in.mgrInfo = info.Info
	in.report.SwarmCreated = true
	in.report.ClusterID = info.Info.Swarm.Cluster.ID
	in.say("docker context %q is now a swarm manager", in.manager.Context)
	return nil
}

// addWorker joins the worker's engine to the swarm and installs its agent;
// if that fails, it undoes what it did on that engine.
func (in *initializer) addWorker(ctx context.Context, w *engines.Engine) (err error) {
	info, err := w.Client.Info(ctx, client.InfoOptions{})
	if err != nil {
		return err
	}
	joined := false
	if info.Info.Swarm.LocalNodeState == swarm.LocalNodeStateInactive {
		if err := in.join(ctx, w); err != nil {
			return err
		}
		joined = true
		if info, err = w.Client.Info(ctx, client.InfoOptions{}); err != nil {
			return in.undoJoin(ctx, w, "", err)
		}
		in.say("%s joined the swarm", info.Info.Name)
	}
	nodeID := info.Info.Swarm.NodeID
	if err := in.waitReady(ctx, nodeID); err != nil {
		if joined {
			return in.undoJoin(ctx, w, nodeID, err)
		}
		return err
	}
	if err := in.ensureAgent(ctx, w, info.Info); err != nil {
		if joined {
			return in.undoJoin(ctx, w, nodeID, err)
		}
		return err
	}
	r := in.touched[nodeID]
	r.Joined = joined
	in.touched[nodeID] = r
	return nil
}

func (in *initializer) join(ctx context.Context, w *engines.Engine) error {
	sw, err := in.manager.Client.SwarmInspect(ctx, client.SwarmInspectOptions{})
	if err != nil {
		return err
	}
	var remotes []string
	for _, p := range in.mgrInfo.Swarm.RemoteManagers {
		remotes = append(remotes, p.Addr)
	}
	_, err = w.Client.SwarmJoin(ctx, client.SwarmJoinOptions{
		ListenAddr:  "0.0.0.0:2377",
		RemoteAddrs: remotes,
		JoinToken:   sw.Swarm.JoinTokens.Worker,
	})
	if err != nil {
		return fmt.Errorf("joining the swarm at %v: %w", remotes, err)
	}
	return nil
}

// undoJoin takes a worker that this run joined back out of the swarm.
func (in *initializer) undoJoin(ctx context.Context, w *engines.Engine, nodeID string, cause error) error {
	ctx = context.WithoutCancel(ctx)
	var errs []error
	errs = append(errs, agentinstall.Remove(ctx, w.Client))
	if _, err := w.Client.SwarmLeave(ctx, client.SwarmLeaveOptions{Force: true}); err != nil {
		errs = append(errs, fmt.Errorf("leaving the swarm: %w", err))
	}
	if nodeID != "" {
		_, _ = in.manager.Client.NodeRemove(ctx, nodeID, client.NodeRemoveOptions{Force: true})
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w (and undoing the join failed: %v)", cause, err)
	}
	return fmt.Errorf("%w (the engine was taken back out of the swarm)", cause)
}

func (in *initializer) waitReady(ctx context.Context, nodeID string) error {
	deadline := time.Now().Add(JoinTimeout)
	for {
		n, err := in.manager.Client.NodeInspect(ctx, nodeID, client.NodeInspectOptions{})
		if err == nil && n.Node.Status.State == swarm.NodeStateReady {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("node is %s: %s", n.Node.Status.State, n.Node.Status.Message)
			}
			return fmt.Errorf("node did not become ready in %s: %w", JoinTimeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// ensureAgent installs (or keeps) the agent on e's engine, records its port
// on the swarm node and waits until it answers over mutual TLS. The agent
// asks for the capabilities the host's root has (agentinstall.Capabilities):
// as recorded on the node, or, where no agent reported them yet, the
// required ones first and, once the agent tells what the host has, a
// second install with those.
func (in *initializer) ensureAgent(ctx context.Context, e *engines.Engine, info system.Info) error {
	nodes, err := swarmstore.Nodes(ctx, in.manager.Client)
	if err != nil {
		return err
	}
	node, err := swarmstore.FindNode(nodes, info.Swarm.NodeID)
	if err != nil {
		return err
	}
	var results []string
	_, err = agentinstall.Fit(node.HostCaps, func(caps []string) ([]string, error) {
		res, ainfo, err := in.installAgent(ctx, e, info, node, caps)
		if err != nil {
			return nil, err
		}
		if res != agentinstall.Unchanged {
			results = append(results, res.String())
		}
		host := ainfo.Capabilities.Host
		if len(host) > 0 && !swarmstore.SameHostCaps(node.HostCaps, host) {
			// Only a shortcut for the next install: not worth failing for.
			if err := swarmstore.SetHostCaps(ctx, in.manager.Client, node.ID, host); err != nil {
				in.say("warning: %s: recording its capabilities: %v", node.Hostname, err)
			}
			node.HostCaps = host
		}
		return host, nil
	})
	if err != nil {
		return err
	}
	if len(results) > 0 {
		in.say("%s: agent %s", node.Hostname, strings.Join(slices.Compact(results), ", then "))
	}
	r := in.touched[node.ID]
	r.Context, r.Agent = e.Context, agentinstall.Unchanged.String()
	if len(results) > 0 {
		r.Agent = results[0]
	}
	in.touched[node.ID] = r
	return nil
}

// installAgent makes e's engine run the agent with caps and waits until it
// answers, returning what it reports.
func (in *initializer) installAgent(ctx context.Context, e *engines.Engine, info system.Info, node swarmstore.Node, caps []string) (agentinstall.Result, api.Info, error) {
	var h *handover
	var handoff agentinstall.Handover
	if old, err := in.fleet.Agent(node); err == nil {
		h = &handover{node: node.Hostname, agent: old, say: in.say}
		handoff = h
	}
	res, token, err := agentinstall.Ensure(ctx, e.Client, agentinstall.Settings{
		Node:         node.Hostname,
		Port:         in.opts.AgentPort,
		CA:           in.fleet.CA.CertPEM,
		Socket:       e.SocketOnHost(),
		DataRoot:     info.DockerRootDir,
		HostRoot:     "/",
		Capabilities: caps,
	}, handoff)
	if err != nil {
		return res, api.Info{}, fmt.Errorf("%s: %w", node.Hostname, err)
	}
	if err := swarmstore.SetAgentPort(ctx, in.manager.Client, node.ID, in.opts.AgentPort); err != nil {
		return res, api.Info{}, err
	}
	node.AgentPort = in.opts.AgentPort
	agent, err := in.fleet.Agent(node)
	if err != nil {
		return res, api.Info{}, err
	}
	wait := AgentTimeout
	if res == agentinstall.Unchanged {
		wait = 5 * time.Second // it was running: it answers at once or not at all
	}
	err = in.enroll(ctx, node, token, wait)
	if err != nil && res == agentinstall.Unchanged {
		// Enabled and configured, yet silent: its process died. Restart it.
		if err = agentinstall.Restart(ctx, e.Client); err == nil {
			res = agentinstall.Restarted
			err = in.enroll(ctx, node, token, AgentTimeout)
		}
	}
	var ainfo api.Info
	if err == nil {
		ainfo, err = agent.WaitInfo(ctx, AgentTimeout)
	}
	if err != nil {
		if res == agentinstall.Installed {
			_ = agentinstall.Remove(context.WithoutCancel(ctx), e.Client)
		}
		return res, ainfo, fmt.Errorf("the agent on %s does not answer at %s: %w", node.Hostname, agent.Addr, err)
	}
	if gap := h.gap(); gap > 0 {
		in.say("%s: no agent for %.1fs while the new one took over", node.Hostname, gap.Seconds())
	}
	return res, ainfo, nil
}

// enroll gives the node's agent a new certificate (its first, or a
// rotation) and the fleet's revocations, waiting up to wait for it to
// listen.
func (in *initializer) enroll(ctx context.Context, node swarmstore.Node, token string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		err := in.fleet.Enroll(ctx, node, token)
		if err == nil {
			return in.fleet.PushRevocations(ctx, node)
		}
		if time.Now().After(deadline) || !errdefs.IsUnavailable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// collect asks every node's agent for its readiness, for the table. The
// nodes this run did not install (no --worker named them) get their
// certificate rotated and the revocations all the same: through their
// current certificate, which needs no access to their engine.
func (in *initializer) collect(ctx context.Context) error {
	nodes, err := swarmstore.Nodes(ctx, in.manager.Client)
	if err != nil {
		return err
	}
	reports := make([]NodeReport, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		touched, ok := in.touched[n.ID]
		reports[i] = touched
		reports[i].Node = n
		wg.Go(func() {
			agent, err := in.fleet.Agent(n)
			if err == nil && !ok {
				err = in.enroll(ctx, n, "", 5*time.Second)
			}
			if err == nil {
				var info api.Info
				if info, err = agent.WaitInfo(ctx, 5*time.Second); err == nil {
					reports[i].Info = &info
				}
			}
			if err != nil {
				reports[i].Error = err.Error()
			}
		})
	}
	wg.Wait()
	in.guardAll(ctx, nodes, reports)
	in.report.Nodes = reports
	return nil
}

// guardAll brings every answering node's guard to the fleet's: the others
// first, then the manager's, whose engine carries the relay that reaches
// them all (a reload of that engine cuts the connections being made
// through it).
func (in *initializer) guardAll(ctx context.Context, nodes []swarmstore.Node, reports []NodeReport) {
	step := func(i int) {
		if reports[i].Info == nil {
			return
		}
		agent, err := in.fleet.Agent(nodes[i])
		if err == nil {
			err = in.guard(ctx, agent, nodes[i], reports[i].Info)
		}
		if err != nil {
			reports[i].Error = err.Error()
		}
	}
	var wg sync.WaitGroup
	for i, n := range nodes {
		if n.ID != in.mgrInfo.Swarm.NodeID {
			wg.Go(func() { step(i) })
		}
	}
	wg.Wait()
	for i, n := range nodes {
		if n.ID == in.mgrInfo.Swarm.NodeID {
			step(i)
		}
	}
}

// guard brings a node's guard to the fleet's: on with init --guard, off
// with --guard=false (and then on every init, for nodes added later).
func (in *initializer) guard(ctx context.Context, agent *agentclient.Client, n swarmstore.Node, info *api.Info) error {
	want := in.report.Guard
	if info.Guard == nil {
		if want {
			return fmt.Errorf("the agent on %s is too old for --guard: run `docker fleet init` again to upgrade it", n.Hostname)
		}
		return nil
	}
	// Asked for with --guard or --guard=false: every node is told, whatever
	// it reported (an agent restarted a moment ago may report a state it
	// is about to leave); otherwise only a node that differs.
	if in.opts.Guard == nil && info.Guard.On == want && info.Guard.Wanted == want {
		return nil
	}
	st, err := agent.SetGuard(ctx, api.GuardRequest{On: want})
	if err != nil {
		return fmt.Errorf("guard: %w", err)
	}
	info.Guard = &st
	in.say("node %s: guard %s", n.Hostname, map[bool]string{true: "on", false: "off"}[want])
	return nil
}

func (in *initializer) say(format string, args ...any) {
	if in.progress != nil {
		fmt.Fprintf(in.progress, format+"\n", args...)
	}
}

// Limits lists, per node, what migration cannot do there (Readiness.Limits).
func (r *Report) Limits() []string {
	var ls []describe.NodeLimits
	for _, n := range r.Nodes {
		if n.Info != nil {
			ls = append(ls, describe.NodeLimits{Node: n.Hostname, Limits: n.Info.Migration.Limits})
		}
	}
	return describe.GroupLimits(ls)
}

// Problems lists what stands in the way of migration, each with the nodes
// where it does.
func (r *Report) Problems() []string {
	var ps []describe.NodeLimits
	for _, n := range r.Nodes {
		switch {
		case n.Error != "":
			ps = append(ps, describe.NodeLimits{Node: n.Hostname, Limits: []string{n.Error}})
		case n.Info != nil:
			ps = append(ps, describe.NodeLimits{Node: n.Hostname, Limits: n.Info.Migration.Problems})
		}
	}
	return describe.GroupLimits(ps)
}

// autoRebalance records the automatic rebalance init was given, if any,
// and returns the fleet's.
func (in *initializer) autoRebalance(ctx context.Context) (swarmstore.AutoRebalance, error) {
	auto, err := swarmstore.LoadAutoRebalance(ctx, in.manager.Client)
	if err != nil || in.opts.RebalanceEvery == nil && in.opts.RebalanceMaxMoves == nil {
		return auto, err
	}
	if in.opts.RebalanceEvery != nil {
		auto.Every = *in.opts.RebalanceEvery
	}
	if in.opts.RebalanceMaxMoves != nil {
		auto.MaxMoves = *in.opts.RebalanceMaxMoves
	}
	if err := swarmstore.SetAutoRebalance(ctx, in.manager.Client, auto); err != nil {
		return auto, fmt.Errorf("recording --rebalance-every: %w", err)
	}
	return auto, nil
}
