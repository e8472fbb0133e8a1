// Package leader is the agent's work on the swarm's leader: it watches the
// fleet's nodes, declares a node dead once it has been silent for the
// fleet's grace period, makes its containers anew on the survivors, and
// fences the node when it comes back; and, when asked, it rebalances the
// fleet live on its own (rebalance.go). Leadership follows the swarm's: the
// agent whose engine leads the swarm does this work, and the swarm's raft
// store (records created once) keeps two leaders from doing it twice.
package leader

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/agentclient"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// Tick is how often the leader looks at the fleet's nodes.
const Tick = 2 * time.Second

// heartbeat bounds one node's answer to the leader.
const heartbeat = 3 * time.Second

// Leader watches the fleet while this node's engine leads the swarm.
type Leader struct {
	// Engine is this node's engine: a manager when it leads.
	Engine client.APIClient
	// Creds are this node's: other agents take them as a manager's
	// (pki.RoleManager).
	Creds agentclient.Credentials
	// Agents makes the client of a node's agent (nil: agentclient.New).
	Agents func(node swarmstore.Node) (Agent, error)

	leading bool
	lastUp  map[string]time.Time // when each node was last not dead
	// clientsMu guards clients: observe asks every node at once.
	clientsMu sync.Mutex
	ledgers   map[string]api.Ledger
	clients   map[string]Agent
	// warmFailed are the containers whose warm copy (taken at that time)
	// was refused: they are relocated cold unless a newer copy comes.
	warmFailed map[string]time.Time
	// standbyAway counts the rounds each container's standby has been
	// away (standbyPatience).
	standbyAway map[string]int
	auto        autoRebalance
}

// Agent is what the leader asks of a node's agent.
type Agent interface {
	Ledger(ctx context.Context) (api.Ledger, error)
	Create(ctx context.Context, req api.CreateRequest) (api.FleetContainer, error)
	Fence(ctx context.Context, req api.FenceRequest) (api.FenceResult, error)
	Rejoin(ctx context.Context, req api.RejoinRequest) (api.RejoinResult, error)
	StandbyAssign(ctx context.Context, req api.StandbyAssign) error
	StandbyExpect(ctx context.Context, req api.StandbyExpect) error
	StandbyDrop(ctx context.Context, req api.StandbyDrop) error
	StandbyRestore(ctx context.Context, req api.StandbyRestoreRequest) (api.FleetContainer, error)
	// The automatic rebalance's (rebalance.go).
	Check(ctx context.Context, req api.CheckRequest) (api.CheckResult, error)
	Expect(ctx context.Context, e api.Expectation) error
	Migrate(ctx context.Context, req api.MigrateRequest, onEvent func(api.MigrateEvent)) (*api.MigrateResult, error)
}

// Run watches the fleet until ctx ends.
func (l *Leader) Run(ctx context.Context) {
	t := time.NewTicker(Tick)
	defer t.Stop()
	for {
		if err := l.Round(ctx); err != nil && !errors.Is(err, swarmstore.ErrNoFleet) {
			log.Printf("leader: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// view is a node as one round saw it.
type view struct {
	swarmstore.Node
	ledger api.Ledger
	err    error // why its agent did not answer
}

// dead says whether the node looks dead now: the swarm has lost it and
// its agent does not answer. A node whose engine the swarm still hears
// runs its containers, whatever its agent does.
func (v view) dead() bool { return v.State != "ready" && v.err != nil }

// Round is one look at the fleet: nothing unless this engine leads the
// swarm.
func (l *Leader) Round(ctx context.Context) error {
	lead, err := l.isLeader(ctx)
	if err != nil || !lead {
		if l.leading {
			log.Printf("leader: no longer the swarm's leader; another manager's agent watches the fleet")
			l.auto.stop("this engine no longer leads the swarm")
		}
		l.leading = false
		return err
	}
	if !l.leading {
		// A new leader gives every node a whole grace period.
		log.Printf("leader: this engine leads the swarm; watching the fleet's nodes")
		l.leading, l.lastUp, l.ledgers, l.warmFailed = true, map[string]time.Time{}, map[string]api.Ledger{}, map[string]time.Time{}
	}
	grace, err := swarmstore.FailoverAfter(ctx, l.Engine)
	if err != nil {
		return err
	}
	downs, err := swarmstore.DownNodes(ctx, l.Engine)
	if err != nil {
		return err
	}
	down := map[string]swarmstore.Down{}
	for _, d := range downs {
		down[d.Node] = d
	}
	views, err := l.observe(ctx, downs)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, v := range views {
		if _, ok := l.lastUp[v.Hostname]; !ok || !v.dead() {
			l.lastUp[v.Hostname] = now
		}
		if v.err == nil {
			l.ledgers[v.Hostname] = v.ledger
		}
		d, isDown := down[v.Hostname]
		switch {
		case isDown && v.err == nil:
			l.fence(ctx, v, d)
		case isDown && !v.dead():
			// Its engine is back, its agent not yet: fence when it answers.
		case isDown || grace > 0 && now.Sub(l.lastUp[v.Hostname]) >= grace:
			if !isDown {
				if d, err = l.declare(ctx, v); err != nil {
					return err
				}
			}
			l.removeFromSwarm(ctx, d, v)
			l.relocate(ctx, d, views)
		}
	}
	l.standbys(ctx, views, down)
	l.rebalance(ctx, views, down)
	return nil
}

// isLeader says whether this engine leads the swarm.
func (l *Leader) isLeader(ctx context.Context) (bool, error) {
	info, err := l.Engine.Info(ctx, client.InfoOptions{})
	if err != nil {
		return false, err
	}
	sw := info.Info.Swarm
	if !sw.ControlAvailable || sw.NodeID == "" {
		return false, nil
	}
	res, err := l.Engine.NodeInspect(ctx, sw.NodeID, client.NodeInspectOptions{})
	if err != nil {
		return false, err
	}
	return res.Node.ManagerStatus != nil && res.Node.ManagerStatus.Leader, nil
}

// observe asks every fleet node's agent for its ledger, all at once: the
// swarm's, and those of dead nodes removed from the swarm, at the address
// their record keeps.
func (l *Leader) observe(ctx context.Context, downs []swarmstore.Down) ([]view, error) {
	nodes, err := swarmstore.Nodes(ctx, l.Engine)
	if err != nil {
		return nil, err
	}
	var views []view
	seen := map[string]bool{}
	for _, n := range nodes {
		if n.AgentPort > 0 {
			views = append(views, view{Node: n})
			seen[n.Hostname] = true
		}
	}
	for _, d := range downs {
		if d.Removed && !seen[d.Node] && d.AgentPort > 0 {
			views = append(views, view{Node: swarmstore.Node{Hostname: d.Node, Role: "worker", State: stateRemoved, Addr: d.Addr, AgentPort: d.AgentPort}})
		}
	}
	var wg sync.WaitGroup
	for i := range views {
		wg.Go(func() {
			v := &views[i]
			a, err := l.agent(v.Node)
			if err != nil {
				v.err = err
				return
			}
			hctx, cancel := context.WithTimeout(ctx, heartbeat)
			defer cancel()
			v.ledger, v.err = a.Ledger(hctx)
		})
	}
	wg.Wait()
	return views, nil
}

func (l *Leader) agent(n swarmstore.Node) (Agent, error) {
	if l.Agents != nil {
		return l.Agents(n)
	}
	key := n.Hostname + "@" + net.JoinHostPort(n.Addr, strconv.Itoa(n.AgentPort))
	l.clientsMu.Lock()
	defer l.clientsMu.Unlock()
	if c, ok := l.clients[key]; ok {
		return c, nil
	}
	c, err := agentclient.New(l.Creds, n.Hostname, n.Addr, n.AgentPort, nil)
	if err != nil {
		return nil, err
	}
	if l.clients == nil {
		l.clients = map[string]Agent{}
	}
	l.clients[key] = c
	return c, nil
}

// declare records the node dead, with the containers it last reported.
func (l *Leader) declare(ctx context.Context, v view) (swarmstore.Down, error) {
	last, known := l.ledgers[v.Hostname]
	down := swarmstore.Down{
		Node: v.Hostname, Since: l.lastUp[v.Hostname], Known: known, Containers: last.Containers,
		NodeID: v.ID, Addr: v.Addr, AgentPort: v.AgentPort,
	}
	// A worker with containers to restore warm is taken out of the swarm:
	// only that frees the overlay addresses they hold, which their warm
	// copies take. A manager stays (its raft vote counts), and so does a
	// node with nothing warm (a cold copy gets a new address anyway).
	if v.Role == "worker" && known && hasWarm(last) {
		n, err := l.Engine.NodeInspect(ctx, v.ID, client.NodeInspectOptions{})
		if err != nil {
			return swarmstore.Down{}, fmt.Errorf("recording node %s dead: %w", v.Hostname, err)
		}
		down.Removed, down.Labels, down.Availability = true, n.Node.Spec.Labels, string(n.Node.Spec.Availability)
	}
	d, created, err := swarmstore.MarkDown(ctx, l.Engine, down)
	if err != nil {
		return d, fmt.Errorf("recording node %s dead: %w", v.Hostname, err)
	}
	if created {
		log.Printf("leader: node %s is dead (the swarm lost it and its agent has not answered since %s): relocating its %d container(s)",
			v.Hostname, d.Since.Format(time.RFC3339), len(d.Containers))
		if err := swarmstore.Count(ctx, l.Engine, swarmstore.CountFailures); err != nil {
			log.Printf("leader: counting the failure of %s: %v", v.Hostname, err)
		}
	}
	return d, nil
}

// hasWarm says whether a node's ledger has a container checkpointed in
// the background.
func hasWarm(l api.Ledger) bool {
	for _, c := range l.Containers {
		if c.Checkpoint != nil {
			return true
		}
	}
	return false
}
