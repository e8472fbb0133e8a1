package leader

import (
	"context"
	"fmt"
	"log"
	"net"
	"slices"
	"strconv"
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
// that comes and goes never sends one back and forth.

// settle is how many intervals a container the automatic rebalance moved
// stays where it went.
const settle = 3

// replans bounds how many times a plan is made again after agents find
// that containers it would move cannot be checkpointed now.
const replans = 3

// autoRebalance is the leader's memory of its automatic rebalance.
type autoRebalance struct {
	last   time.Time // when it last looked
	moving bool      // a batch of moves runs

	mu    sync.Mutex
	moved map[string]time.Time // container → when it moved it
}

// rebalance starts the automatic rebalance's moves when one is due.
func (l *Leader) rebalance(ctx context.Context, views []view, down map[string]swarmstore.Down) {
	auto, err := swarmstore.LoadAutoRebalance(ctx, l.Engine)
	if err != nil || auto.Every <= 0 || auto.MaxMoves <= 0 {
		return
	}
	a := &l.auto
	a.mu.Lock()
	moving := a.moving
	a.mu.Unlock()
	if moving || time.Since(a.last) < auto.Every {
		return
	}
	a.last = time.Now()
	if len(down) > 0 {
		log.Printf("leader: automatic rebalance: not now, a node is dead (its containers are relocated first)")
		return
	}
	for _, v := range views {
		if v.err != nil {
			log.Printf("leader: automatic rebalance: not now, the agent of %s does not answer: %v", v.Hostname, v.err)
			return
		}
	}
	plan, err := l.plan(ctx, views, auto)
	if err != nil {
		log.Printf("leader: automatic rebalance: %v", err)
		return
	}
	if len(plan.Moves) == 0 {
		return
	}
	byName := map[string]view{}
	agents := map[string]Agent{}
	for _, v := range views {
		byName[v.Hostname] = v
		if agents[v.Hostname], err = l.agent(v.Node); err != nil {
			log.Printf("leader: automatic rebalance: %s: %v", v.Hostname, err)
			return
		}
	}
	log.Printf("leader: automatic rebalance (every %s): %d move(s)", auto.Every, len(plan.Moves))
	a.mu.Lock()
	a.moving = true
	a.mu.Unlock()
	go func() {
		defer func() {
			a.mu.Lock()
			a.moving = false
			a.mu.Unlock()
		}()
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
	}()
}

// plan is the automatic rebalance's plan: spread, at most auto.MaxMoves
// moves, none of a container it moved lately, each of whose containers
// its agent found it can checkpoint now.
func (l *Leader) plan(ctx context.Context, views []view, auto swarmstore.AutoRebalance) (scheduler.Plan, error) {
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
	l.auto.mu.Lock()
	for i := range res {
		if at, ok := l.auto.moved[res[i].Name]; ok && res[i].Stays == "" && time.Since(at) < settle*auto.Every {
			res[i].Stays = "the automatic rebalance moved it at " + at.Format(time.RFC3339) + ": it settles first"
		}
	}
	l.auto.mu.Unlock()
	byNode := map[string]Agent{}
	checker := func(ctx context.Context, node string, req api.CheckRequest) (api.CheckResult, error) {
		return byNode[node].Check(ctx, req)
	}
	for _, v := range views {
		a, err := l.agent(v.Node)
		if err != nil {
			return scheduler.Plan{}, fmt.Errorf("%s: %w", v.Hostname, err)
		}
		byNode[v.Hostname] = a
	}
	checked := map[string]bool{}
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
			return plan, nil
		}
		if err := moves.Check(ctx, res, toCheck, checker); err != nil {
			return scheduler.Plan{}, err
		}
	}
	return scheduler.Plan{}, fmt.Errorf("no plan after %d tries: the containers planned kept failing their agents' checks", replans+1)
}

// move starts one migration of the plan, from the node it planned with
// (the source refuses it if the container is no longer there), and
// records it in the container's history, which makes it a fleet event.
func (l *Leader) move(ctx context.Context, m scheduler.Move, byName map[string]view, agents map[string]Agent) (*api.MigrateResult, error) {
	src, dst := byName[m.From], byName[m.To]
	i := slices.IndexFunc(src.ledger.Containers, func(c api.FleetContainer) bool { return c.Name == m.Container })
	if i < 0 {
		return nil, fmt.Errorf("%s is no longer on %s", m.Container, m.From)
	}
	id, err := moves.NewID()
	if err != nil {
		return nil, err
	}
	exp, err := moves.Expectation(ctx, l.Engine, id, src.ledger.Containers[i], src.Node)
	if err != nil {
		return nil, err
	}
	if err := agents[m.To].Expect(ctx, exp); err != nil {
		return nil, fmt.Errorf("destination %s: %w", m.To, err)
	}
	res, err := agents[m.From].Migrate(ctx, api.MigrateRequest{ID: id, Container: m.Container, To: m.To,
		ToAddr: net.JoinHostPort(dst.Addr, strconv.Itoa(dst.AgentPort))}, func(api.MigrateEvent) {})
	if err != nil {
		return nil, err
	}
	l.auto.mu.Lock()
	if l.auto.moved == nil {
		l.auto.moved = map[string]time.Time{}
	}
	l.auto.moved[m.Container] = time.Now()
	l.auto.mu.Unlock()
	res.By = "the automatic rebalance: " + m.Why
	if err := swarmstore.RecordMigration(context.WithoutCancel(ctx), l.Engine, *res); err != nil {
		log.Printf("leader: automatic rebalance: %s moved, but its migration was not recorded: %v", m.Container, err)
	}
	return res, nil
}
