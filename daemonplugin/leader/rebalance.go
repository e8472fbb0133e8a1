package leader

import (
	"context"
	"errors"
	"fmt"
	"log"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/moves"
	"github.com/docker-fleet/fleet/shared/scheduler"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// The automatic rebalance (init --rebalance-every): every so often the
// leader plans as `docker fleet rebalance` does (spread), and carries out
// at most so many of its moves, one at a time, in the background while
// it goes on watching the fleet. It does nothing while a node is dead or
// an agent does not answer (the fleet's replicas could not be counted),
// and a container it moved stays put for a few intervals, so that load
// that comes and goes never sends one back and forth. A batch stops
// starting moves once this engine no longer leads, a node dies or the
// setting is turned off; a move already started is followed to its end.

// settle is how many intervals a container the automatic rebalance moved
// stays where it went.
const settle = 3

// replans bounds how many times a plan is made again after agents find
// that containers it would move cannot be checkpointed now.
const replans = 3

// planTimeout bounds the planning of a batch (the agents' checks).
const planTimeout = 30 * time.Second

// moveTimeout bounds one move, so that a source agent that never answers
// cannot hold the automatic rebalance forever.
const moveTimeout = 30 * time.Minute

// autoRebalance is the leader's memory of its automatic rebalance. Round
// reads and writes last and settingErr; the rest is shared with the
// batch running in the background, under mu.
type autoRebalance struct {
	last       time.Time // when it last looked
	settingErr string    // the setting's last error, logged once

	mu       sync.Mutex
	cancel   context.CancelFunc   // the batch running, if any
	stopping bool                 // it was told to start no more moves
	moved    map[string]time.Time // container → when it moved it
}

// running says whether a batch runs.
func (a *autoRebalance) running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cancel != nil
}

// stop has the batch running, if any, start no more moves.
func (a *autoRebalance) stop(why string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cancel != nil && !a.stopping {
		log.Printf("leader: automatic rebalance: no more moves in this batch: %s", why)
		a.stopping = true
		a.cancel()
	}
}

// settled marks containers moved less than settle intervals ago as
// staying, and forgets older moves.
func (a *autoRebalance) settled(res []scheduler.Resident, every time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for name, at := range a.moved {
		if time.Since(at) >= settle*every {
			delete(a.moved, name)
		}
	}
	for i := range res {
		if at, ok := a.moved[res[i].Name]; ok && res[i].Stays == "" {
			res[i].Stays = "the automatic rebalance moved it at " + at.Format(time.RFC3339) + ": it settles first"
		}
	}
}

func (a *autoRebalance) justMoved(container string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.moved == nil {
		a.moved = map[string]time.Time{}
	}
	a.moved[container] = time.Now()
}

// setting reads the automatic rebalance's setting; an unreadable one is
// logged once and taken as off.
func (l *Leader) setting(ctx context.Context) swarmstore.AutoRebalance {
	auto, err := swarmstore.LoadAutoRebalance(ctx, l.Engine)
	msg := ""
	if err != nil && !errors.Is(err, swarmstore.ErrNoFleet) {
		msg = err.Error()
	}
	if msg != l.auto.settingErr && msg != "" {
		log.Printf("leader: automatic rebalance off: its setting cannot be read: %s (run docker fleet init --rebalance-every again)", msg)
	}
	l.auto.settingErr = msg
	if err != nil || auto.MaxMoves <= 0 {
		return swarmstore.AutoRebalance{}
	}
	return auto
}

// rebalance starts a batch of the automatic rebalance when one is due, or
// stops the one running when it should no longer go on.
func (l *Leader) rebalance(ctx context.Context, views []view, down map[string]swarmstore.Down) {
	auto := l.setting(ctx)
	switch {
	case auto.Every <= 0:
		l.auto.stop("the automatic rebalance was turned off")
		return
	case len(down) > 0:
		l.auto.stop("a node is dead")
	}
	if l.auto.running() || time.Since(l.auto.last) < auto.Every {
		return
	}
	l.auto.last = time.Now()
	if len(down) > 0 {
		log.Printf("leader: automatic rebalance: not now, a node is dead (its containers are relocated first)")
		return
	}
	agents := map[string]Agent{}
	for _, v := range views {
		a, err := l.agent(v.Node)
		if err == nil {
			err = v.err
		}
		if err != nil {
			log.Printf("leader: automatic rebalance: not now, the agent of %s does not answer: %v", v.Hostname, err)
			return
		}
		agents[v.Hostname] = a
	}
	batch, cancel := context.WithCancel(ctx)
	l.auto.mu.Lock()
	l.auto.cancel = cancel
	l.auto.mu.Unlock()
	go func() {
		defer func() {
			l.auto.mu.Lock()
			l.auto.cancel, l.auto.stopping = nil, false
			l.auto.mu.Unlock()
			cancel()
		}()
		l.batch(batch, views, agents, auto)
	}()
}

// batch plans and carries out one batch of the automatic rebalance.
func (l *Leader) batch(ctx context.Context, views []view, agents map[string]Agent, auto swarmstore.AutoRebalance) {
	pctx, cancel := context.WithTimeout(ctx, planTimeout)
	plan, err := l.plan(pctx, views, agents, auto)
	cancel()
	if err != nil {
		log.Printf("leader: automatic rebalance: %v", err)
		return
	}
	if len(plan.Moves) == 0 {
		return
	}
	log.Printf("leader: automatic rebalance (every %s): %d move(s)", auto.Every, len(plan.Moves))
	byName := map[string]view{}
	for _, v := range views {
		byName[v.Hostname] = v
	}
	results := moves.CarryOut(ctx, plan.Moves, 1, func(ctx context.Context, m scheduler.Move) (*api.MigrateResult, error) {
		return l.move(ctx, m, byName, agents)
	})
	for _, r := range results {
		if r.Err() != nil {
			log.Printf("leader: automatic rebalance: %s stays on %s: %v", r.Container, r.From, r.Err())
			continue
		}
		log.Printf("leader: automatic rebalance: moved %s from %s to %s (%s), downtime %.2fs", r.Container, r.From, r.To, r.Why, r.Migration.Downtime)
	}
}

// plan is the automatic rebalance's plan: spread, at most auto.MaxMoves
// moves, none of a container it moved lately, each of whose containers
// its agent found it can checkpoint now.
func (l *Leader) plan(ctx context.Context, views []view, agents map[string]Agent, auto swarmstore.AutoRebalance) (scheduler.Plan, error) {
	nodes := make([]moves.Node, 0, len(views))
	sched := make([]scheduler.Node, 0, len(views))
	for _, v := range views {
		nodes = append(nodes, moves.Node{Hostname: v.Hostname, Ledger: v.ledger})
		sn := scheduler.NodeOf(v.Hostname, v.State, v.Availability, v.ledger, v.err)
		sn.Facts = v.Facts()
		sched = append(sched, sn)
	}
	all := func(string, api.FleetContainer) bool { return true }
	later := func(string, api.FleetContainer) bool { return false } // checked once planned
	res, err := moves.Residents(ctx, l.Engine, nodes, all, later, nil)
	if err != nil {
		return scheduler.Plan{}, err
	}
	l.auto.settled(res, auto.Every)
	checker := func(ctx context.Context, node string, req api.CheckRequest) (api.CheckResult, error) {
		return agents[node].Check(ctx, req)
	}
	checked := map[string]bool{}
	var refused []string
	for range replans + 1 {
		plan, err := scheduler.Rebalance(sched, res, spec.Spread, auto.MaxMoves)
		if err != nil {
			return scheduler.Plan{}, err
		}
		var toCheck []int
		for _, m := range plan.Moves {
			if !checked[m.Container] {
				checked[m.Container] = true
				toCheck = append(toCheck, slices.IndexFunc(res, func(r scheduler.Resident) bool { return r.Name == m.Container }))
			}
		}
		if len(toCheck) == 0 {
			if len(plan.Moves) == 0 && len(refused) > 0 {
				log.Printf("leader: automatic rebalance: nothing can move now: %s", strings.Join(refused, "; "))
			}
			return plan, nil
		}
		if err := moves.Check(ctx, res, toCheck, checker); err != nil {
			return scheduler.Plan{}, err
		}
		for _, i := range toCheck {
			if res[i].Stays != "" {
				refused = append(refused, res[i].Name+" ("+res[i].Stays+")")
			}
		}
	}
	return scheduler.Plan{}, fmt.Errorf("no plan after %d tries: the containers planned kept failing their agents' checks: %s", replans+1, strings.Join(refused, "; "))
}

// move starts one migration of the plan and follows it to its end, even
// once the batch is stopped, and records it in the container's history
// (which makes it a fleet event). Right before, it looks again: the
// container must still run on the node the plan moves it from, and its
// service must not be being updated.
func (l *Leader) move(ctx context.Context, m scheduler.Move, byName map[string]view, agents map[string]Agent) (*api.MigrateResult, error) {
	src, dst := byName[m.From], byName[m.To]
	ledger, err := agents[m.From].Ledger(ctx)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", m.From, err)
	}
	i := slices.IndexFunc(ledger.Containers, func(c api.FleetContainer) bool { return c.Name == m.Container })
	if i < 0 || ledger.Containers[i].State != "running" {
		return nil, fmt.Errorf("%s no longer runs on %s", m.Container, m.From)
	}
	c := ledger.Containers[i]
	if st, err := swarmstore.LoadServiceState(ctx, l.Engine, c.Service); err == nil && st.Update.Running() {
		return nil, fmt.Errorf("an update of %s began since the plan", c.Service)
	}
	req, err := moves.Announce(ctx, l.Engine, c, src.Node, dst.Node, agents[m.To])
	if err != nil {
		return nil, err
	}
	// Started, it is followed to its end: its source agent drives it.
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), moveTimeout)
	defer cancel()
	res, err := agents[m.From].Migrate(mctx, req, func(api.MigrateEvent) {})
	if err != nil {
		return nil, err
	}
	l.auto.justMoved(m.Container)
	res.By = "the automatic rebalance: " + m.Why
	if err := swarmstore.RecordMigration(mctx, l.Engine, *res); err != nil {
		log.Printf("leader: automatic rebalance: %s moved, but its migration was not recorded: %v", m.Container, err)
	}
	return res, nil
}
