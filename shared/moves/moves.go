// Package moves holds what the CLI and the swarm leader's agent both do
// to move running containers live: announce a migration to its
// destination (Announce), see which containers a plan may move
// (Residents), and carry a plan's moves out (CarryOut). The source agent
// drives each migration itself; whoever carries out a plan only starts
// them.
package moves

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/scheduler"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// newID names a migration for its two agents.
func newID() (string, error) {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// Expecter is a destination's agent, as Announce tells it what to expect.
type Expecter interface {
	Expect(ctx context.Context, e api.Expectation) error
}

// Announce names a migration of c from the node src to the node dst and
// tells dst's agent to accept it (the destination accepts from the source
// only what is announced); the request it returns starts it at src's
// agent, which drives it.
func Announce(ctx context.Context, store client.APIClient, c api.FleetContainer, src, dst swarmstore.Node, dstAgent Expecter) (api.MigrateRequest, error) {
	id, err := newID()
	if err != nil {
		return api.MigrateRequest{}, err
	}
	exp, err := expectation(ctx, store, id, c, src)
	if err != nil {
		return api.MigrateRequest{}, err
	}
	if err := dstAgent.Expect(ctx, exp); err != nil {
		return api.MigrateRequest{}, fmt.Errorf("destination %s: %w", dst.Hostname, err)
	}
	return api.MigrateRequest{ID: id, Container: c.Name, To: dst.Hostname, ToAddr: agentAddr(dst)}, nil
}

// agentAddr is where a node's agent listens.
func agentAddr(n swarmstore.Node) string { return net.JoinHostPort(n.Addr, strconv.Itoa(n.AgentPort)) }

// expectation is what the destination of migration id is told to
// accept from the source node src: the container c, on the fleet's
// network, with its cores, memory and what its service's stored
// definition lets its twin have beyond a plain container (without one:
// nothing more).
func expectation(ctx context.Context, store client.APIClient, id string, c api.FleetContainer, src swarmstore.Node) (api.Expectation, error) {
	network, err := swarmstore.FindNetwork(ctx, store)
	if err != nil {
		return api.Expectation{}, err
	}
	exp := api.Expectation{ID: id, From: src.Hostname, Container: c.Name, Network: network.Name, Memory: c.Memory,
		FromAddr: agentAddr(src)}
	if c.Exclusive {
		set, _ := cpuset.Parse(c.Cpuset)
		exp.Cores = len(set)
	}
	if svc, err := swarmstore.LoadService(ctx, store, c.Service); err == nil {
		exp.Privileges = api.PrivilegesOf(svc)
	}
	return exp, nil
}

// Node is a node's ledger as a plan reads it.
type Node struct {
	Hostname string
	Ledger   api.Ledger
}

// Checker asks a node's agent whether one of its containers could be
// checkpointed now.
type Checker func(ctx context.Context, node string, req api.CheckRequest) (api.CheckResult, error)

// checkParallel bounds the agents' checks of containers at once: each
// looks through a container's processes.
const checkParallel = 8

// Residents are the containers of nodes that include takes, as a planner
// sees them, each with why it cannot move if so (Stays): a service
// without a stored definition, placed with --node, on its node's own
// network, being updated, or not running. Those that check takes and
// that may move are checked by their agents (check), a few at once, for
// what CRIU cannot checkpoint.
func Residents(ctx context.Context, store client.APIClient, nodes []Node, include, check func(node string, c api.FleetContainer) bool, checker Checker) ([]scheduler.Resident, error) {
	states := map[string]*swarmstore.ServiceState{} // nil: no stored definition
	var out []scheduler.Resident
	var toCheck []int
	for _, n := range nodes {
		for _, c := range n.Ledger.Containers {
			if !include(n.Hostname, c) {
				continue
			}
			st, ok := states[c.Service]
			if !ok {
				got, err := swarmstore.LoadServiceState(ctx, store, c.Service)
				switch {
				case errors.Is(err, swarmstore.ErrNoService):
				case err != nil:
					return nil, err
				default:
					st = &got
				}
				states[c.Service] = st
			}
			r := scheduler.Resident{Name: c.Name, Service: c.Service, Replica: c.Replica, Node: n.Hostname, Memory: c.Memory,
				Ports: scheduler.PortsHeld(n.Ledger, c.Name), Load: c.CPU}
			if c.Exclusive {
				r.Cpuset, _ = cpuset.Parse(c.Cpuset)
			}
			var svc spec.Service
			if st != nil {
				svc = st.Service
				r.Constraints = svc.Constraints
			}
			switch {
			case st == nil:
				// Without its constraints, any move could break them.
				r.Stays = "its service " + c.Service + " has no stored definition"
			case svc.Node != "":
				r.Stays = "placed with --node " + svc.Node
				// Its one node is all it may run on: it is even there.
				r.Constraints = append(slices.Clone(r.Constraints), spec.ConstraintHostname+"=="+svc.Node)
			case svc.NetworkMode == spec.HostNetwork:
				r.Stays = "on its node's own network (network_mode: host), which cannot migrate"
			case st.Update.Running():
				r.Stays = fmt.Sprintf("an update of %s has not ended: finish it (docker fleet update %s) or roll it back (--rollback) first", c.Service, c.Service)
			case c.State != "running":
				r.Stays = "it is " + cmp.Or(c.State, "not running") + ", and only a running container migrates"
			case check(n.Hostname, c):
				toCheck = append(toCheck, len(out))
			}
			out = append(out, r)
		}
	}
	return out, Check(ctx, out, toCheck, checker)
}

// Check asks the agents whether each of res[which] could be checkpointed
// now; one that could not stays, with the agent's reasons.
func Check(ctx context.Context, res []scheduler.Resident, which []int, checker Checker) error {
	sem := make(chan struct{}, checkParallel)
	var wg sync.WaitGroup
	for _, i := range which {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			got, err := checker(ctx, res[i].Node, api.CheckRequest{Container: res[i].Name})
			switch {
			case err != nil:
				res[i].Stays = "its agent could not check it: " + err.Error()
			case !got.OK:
				res[i].Stays = cmp.Or(strings.Join(got.Problems, "; "), "its agent found it cannot be checkpointed")
			}
		})
	}
	wg.Wait()
	return ctx.Err()
}

// Result is how one move of a plan ended: its migration, or why its
// container stays where it was.
type Result struct {
	scheduler.Move
	Migration *api.MigrateResult `json:"migration,omitempty"`
	Error     string             `json:"error,omitempty"`

	err error
}

// Err is why the move failed (nil: it did not).
func (r Result) Err() error { return r.err }

// Migrate carries out one move, its container expected on m.From.
type Migrate func(ctx context.Context, m scheduler.Move) (*api.MigrateResult, error)

// CarryOut runs the moves as live migrations, in order, up to parallel at
// once and never two on one node at once: a move waits for every earlier
// move that shares a node with it, so that each finds its destination as
// the plan left it. A failed move leaves its container where it was (the
// migration protocol's own guarantee); the others go on. Once ctx ends,
// no move starts.
func CarryOut(ctx context.Context, moves []scheduler.Move, parallel int, migrate Migrate) []Result {
	parallel = max(parallel, 1)
	out := make([]Result, len(moves))
	const (
		waiting = iota
		running
		finished
	)
	state := make([]int, len(moves))
	ended := make(chan int)
	busy := 0
	shares := func(a, b scheduler.Move) bool {
		return a.From == b.From || a.From == b.To || a.To == b.From || a.To == b.To
	}
	ready := func(i int) bool {
		for j := range i {
			if state[j] != finished && shares(moves[j], moves[i]) {
				return false
			}
		}
		return true
	}
	for {
		for i := range moves {
			if busy >= parallel || ctx.Err() != nil {
				break
			}
			if state[i] != waiting || !ready(i) {
				continue
			}
			state[i] = running
			busy++
			go func() {
				res, err := migrate(ctx, moves[i])
				out[i] = Result{Move: moves[i], Migration: res, err: err}
				if err != nil {
					out[i].Error = err.Error()
				}
				ended <- i
			}()
		}
		if busy == 0 {
			break
		}
		state[<-ended] = finished
		busy--
	}
	for i, m := range moves {
		if state[i] == waiting {
			err := fmt.Errorf("not started: %w", context.Cause(ctx))
			out[i] = Result{Move: m, Error: err.Error(), err: err}
		}
	}
	return out
}

// Failed is an error naming each move that failed, or nil; the
// migrations' own errors are kept in it (errdefs kinds and all).
func Failed(results []Result) error {
	var failed moveErrors
	for _, r := range results {
		if r.err != nil {
			failed = append(failed, fmt.Errorf("%s (%s to %s): %w", r.Container, r.From, r.To, r.err))
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d moves failed, each container staying where it was: %w", len(failed), len(results), failed)
}

// moveErrors are errors of several moves, written on one line.
type moveErrors []error

func (e moveErrors) Error() string {
	var parts []string
	for _, err := range e {
		parts = append(parts, err.Error())
	}
	return strings.Join(parts, "; ")
}

func (e moveErrors) Unwrap() []error { return e }
