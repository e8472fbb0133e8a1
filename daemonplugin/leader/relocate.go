package leader

import (
	"context"
	"errors"

	"github.com/containerd/errdefs"
	"log"
	"strconv"
	"strings"
	"time"

	"github.com/docker-fleet/fleet/shared/agentclient"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/scheduler"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// relocate makes the dead node's containers anew on the live nodes: each
// one not running elsewhere yet, placed by the scheduler, under its name.
// One that fits nowhere stays wanted and is tried again next round.
func (l *Leader) relocate(ctx context.Context, d swarmstore.Down, views []view) {
	running := map[string]bool{}
	var sched []scheduler.Node
	byName := map[string]view{}
	for _, v := range views {
		for _, c := range v.ledger.Containers {
			running[c.Name] = true
		}
		sn := scheduler.NodeOf(v.Hostname, v.State, v.Availability, v.ledger, v.err)
		sn.Facts = v.Facts() // the service's placement constraints hold here too
		if v.Hostname == d.Node {
			sn.Unusable = "node is dead"
		}
		sched = append(sched, sn)
		byName[v.Hostname] = v
	}
	lost, err := l.lost(ctx, d, running)
	if err != nil {
		log.Printf("leader: relocating from %s: %v", d.Node, err)
		return
	}
	network, err := swarmstore.FindNetwork(ctx, l.Engine)
	if err != nil {
		log.Printf("leader: relocating from %s: %v", d.Node, err)
		return
	}
	up := live(views, map[string]swarmstore.Down{d.Node: d})
	// A warm copy takes the dead node's address: only once the swarm has
	// let the node go (freeing it), and never for a node kept in it.
	warm := d.Removed
	for _, v := range views {
		if v.Hostname == d.Node && v.State != stateRemoved {
			warm = false
		}
	}
	for _, c := range lost {
		if running[c.Name] {
			continue
		}
		isRunning := func(name string) bool { return running[name] }
		to, copy, hasCopy := warmCopy(c.Name, d.Node, up)
		if hasCopy && d.Removed && !warm {
			continue // its address is not free yet: next round
		}
		if hasCopy && warm && l.relocateWarm(ctx, d.Node, c, to, copy, network.Name, isRunning) {
			continue
		}
		if err := l.relocateOne(ctx, d.Node, c, sched, byName, network.Name, isRunning); err != nil {
			log.Printf("leader: %s of dead node %s stays wanted: %v", c.Name, d.Node, err)
		}
	}
}

// lost is what ran on the dead node and still belongs to a service: what
// the node last reported, and what was made for it since (its claim names
// it: the leader looks at a node only every Tick). A leader that never
// heard from the node takes every claimed replica that runs on no live
// node.
func (l *Leader) lost(ctx context.Context, d swarmstore.Down, running map[string]bool) ([]api.FleetContainer, error) {
	claims, err := swarmstore.Claims(ctx, l.Engine)
	if err != nil {
		return nil, err
	}
	// A replica scaled away or a service removed meanwhile has no claim
	// left.
	reported := map[string]api.FleetContainer{}
	for _, c := range d.Containers {
		reported[c.Name] = c
	}
	var out []api.FleetContainer
	for _, cl := range claims {
		if c, ok := reported[cl.Name]; ok {
			out = append(out, c)
			continue
		}
		if running[cl.Name] || d.Known && cl.Node != d.Node {
			continue
		}
		svc, n, ok := strings.Cut(cl.Name, ".")
		replica, err := strconv.Atoi(n)
		if !ok || err != nil {
			continue
		}
		out = append(out, api.FleetContainer{Name: cl.Name, Service: svc, Replica: replica})
	}
	return out, nil
}

// errNoRoom says a replica fits on no live node now.
var errNoRoom = errors.New("no live node can take it now")

func (l *Leader) relocateOne(ctx context.Context, from string, c api.FleetContainer, sched []scheduler.Node, views map[string]view, network string, running func(string) bool) error {
	svc, err := swarmstore.LoadService(ctx, l.Engine, c.Service)
	if errors.Is(err, swarmstore.ErrNoService) {
		return nil // removed meanwhile
	}
	if err != nil {
		return err
	}
	// A replica pinned to the dead node goes where it can.
	svc.Node = ""
	where, err := scheduler.Place(sched, scheduler.RequestOf(svc), 1)
	if err != nil {
		return errors.Join(errNoRoom, err)
	}
	to := views[where[0]]
	rel := swarmstore.Relocation{Replica: c.Name, From: from, To: to.Hostname, Kind: "cold", At: time.Now()}
	ok, err := swarmstore.ClaimRelocation(ctx, l.Engine, rel, running)
	if err != nil || !ok {
		return err // another leader relocates it
	}
	a, err := l.agent(to.Node)
	if err == nil {
		_, err = a.Create(ctx, api.CreateRequest{Name: c.Name, Replica: c.Replica, Network: network, Service: svc})
	}
	if err != nil {
		// Not made: the next round may try again.
		if derr := swarmstore.DropRelocation(context.WithoutCancel(ctx), l.Engine, c.Name); derr != nil {
			log.Printf("leader: dropping the relocation record of %s: %v", c.Name, derr)
		}
		return err
	}
	log.Printf("leader: relocated %s from dead node %s to %s (cold: started afresh)", c.Name, from, to.Hostname)
	if err := swarmstore.MarkRelocated(ctx, l.Engine, rel); err != nil {
		log.Printf("leader: recording the relocation of %s: %v", c.Name, err)
	}
	if err := swarmstore.Count(ctx, l.Engine, swarmstore.CountRelocationsCold); err != nil {
		log.Printf("leader: counting the relocation of %s: %v", c.Name, err)
	}
	return nil
}

// relocateWarm restores a lost container on to, the live node that holds
// its newest checkpoint from the dead node (warmCopy): same address, its
// memory and files as they were at that checkpoint. done is false when
// that copy was refused in an earlier round: the container is then
// relocated cold. A refusal is not followed by a cold relocation in
// the same round, and a restore whose answer did not come (a timeout, a
// cut link) keeps its record: had the copy been restored, the next
// round's ledgers show it running, and a record left by a restore that
// never happened is taken over once stale.
func (l *Leader) relocateWarm(ctx context.Context, from string, c api.FleetContainer, to view, copy api.StandbyCopy, network string, running func(string) bool) (done bool) {
	if l.warmFailed[c.Name].Equal(copy.At) {
		return false
	}
	rel := swarmstore.Relocation{Replica: c.Name, From: from, To: to.Hostname, Kind: "warm", At: time.Now()}
	claimed, err := swarmstore.ClaimRelocation(ctx, l.Engine, rel, running)
	if err != nil || !claimed {
		return true // another leader relocates it, or the next round tries
	}
	a, err := l.agent(to.Node)
	if err == nil {
		_, err = a.StandbyRestore(ctx, api.StandbyRestoreRequest{Container: c.Name, Network: network})
	}
	var refused *agentclient.Error
	switch {
	case err != nil && !errors.As(err, &refused):
		log.Printf("leader: restoring %s on %s from its checkpoint of %s: no answer (%v); the next round sees whether it runs",
			c.Name, to.Hostname, copy.At.Format(time.RFC3339), err)
		return true
	case err != nil:
		log.Printf("leader: restoring %s on %s from its checkpoint of %s failed, relocating it cold: %v",
			c.Name, to.Hostname, copy.At.Format(time.RFC3339), err)
		if derr := swarmstore.DropRelocation(context.WithoutCancel(ctx), l.Engine, c.Name); derr != nil {
			log.Printf("leader: dropping the relocation record of %s: %v", c.Name, derr)
		}
		if !errdefs.IsUnavailable(err) { // a busy node is asked again
			l.warmFailed[c.Name] = copy.At
		}
		return true
	}
	delete(l.warmFailed, c.Name)
	log.Printf("leader: relocated %s from dead node %s to %s (warm: restored from its checkpoint of %s, %s old)",
		c.Name, from, to.Hostname, copy.At.Format(time.RFC3339), time.Since(copy.At).Round(time.Second))
	if err := swarmstore.MarkRelocated(ctx, l.Engine, rel); err != nil {
		log.Printf("leader: recording the relocation of %s: %v", c.Name, err)
	}
	if err := swarmstore.Count(ctx, l.Engine, swarmstore.CountRelocationsWarm); err != nil {
		log.Printf("leader: counting the relocation of %s: %v", c.Name, err)
	}
	return true
}
