package leader

import (
	"context"
	"fmt"
	"log"
	"sort"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// stateRemoved is the state of a dead node the leader took out of the
// swarm, as its view shows it.
const stateRemoved = "removed"

// removeFromSwarm takes a dead worker out of the swarm, as its record says
// to: the swarm frees the overlay addresses its containers held only then
// (the relocated copies take them). Tried every round until done.
func (l *Leader) removeFromSwarm(ctx context.Context, d swarmstore.Down, v view) {
	if !d.Removed || v.State == stateRemoved || v.ID != d.NodeID {
		return
	}
	if _, err := l.Engine.NodeRemove(ctx, v.ID, client.NodeRemoveOptions{Force: true}); err != nil && !errdefs.IsNotFound(err) {
		log.Printf("leader: removing dead node %s from the swarm: %v", d.Node, err)
		return
	}
	log.Printf("leader: removed dead node %s from the swarm (its containers' addresses are free); it joins again once it is back and fenced", d.Node)
}

// fence has a node back from the dead remove its copies of what was
// relocated, has it join the swarm again if it was removed, then forgets
// its death.
func (l *Leader) fence(ctx context.Context, v view, d swarmstore.Down) {
	if err := l.fenceCopies(ctx, v); err != nil {
		log.Printf("leader: fencing %s: %v", v.Hostname, err)
		return
	}
	if d.Removed {
		done, err := l.readmit(ctx, v, d)
		if err != nil {
			log.Printf("leader: %s is back and fenced; having it join the swarm again: %v", v.Hostname, err)
		}
		if !done {
			return
		}
	}
	if err := swarmstore.ClearDown(ctx, l.Engine, v.Hostname); err != nil {
		log.Printf("leader: fencing %s: %v", v.Hostname, err)
	}
}

// fenceCopies has the node remove its copies of the replicas relocated
// away from it, and records them fenced.
func (l *Leader) fenceCopies(ctx context.Context, v view) error {
	rels, err := swarmstore.Relocations(ctx, l.Engine, v.Hostname)
	if err != nil {
		return err
	}
	req := api.FenceRequest{}
	for _, r := range rels {
		req.Containers = append(req.Containers, r.Replica)
	}
	if len(req.Containers) > 0 {
		a, err := l.agent(v.Node)
		if err != nil {
			return err
		}
		res, err := a.Fence(ctx, req)
		if err != nil {
			return err
		}
		log.Printf("leader: node %s is back; it removed its copies of what was relocated: %v", v.Hostname, res.Removed)
	}
	for _, r := range rels {
		if err := swarmstore.MarkFenced(ctx, l.Engine, r.Replica); err != nil {
			return err
		}
	}
	return nil
}

// readmit brings a fenced node the leader removed back into the swarm: it
// has its agent join again, then gives the new swarm node the fleet's
// labels (its agent's port, its host's capabilities). done says it is a
// fleet node again; until then each round takes the next step.
func (l *Leader) readmit(ctx context.Context, v view, d swarmstore.Down) (bool, error) {
	nodes, err := swarmstore.Nodes(ctx, l.Engine)
	if err != nil {
		return false, err
	}
	var again []swarmstore.Node
	for _, n := range nodes {
		if n.Hostname != d.Node {
			continue
		}
		if n.ID == d.NodeID {
			// Not removed yet (the removal failed, or a leader died
			// first): the node joins again only once it is.
			l.removeFromSwarm(ctx, d, view{Node: n})
			return false, nil
		}
		again = append(again, n)
	}
	// A ready one first: an older entry of the same name may be left down.
	sort.SliceStable(again, func(i, j int) bool { return again[i].State == "ready" && again[j].State != "ready" })
	if len(again) > 0 {
		n := again[0]
		if n.State != "ready" {
			return false, nil // joined, not ready yet
		}
		if err := swarmstore.RestoreNode(ctx, l.Engine, n.ID, d); err != nil {
			return false, err
		}
		log.Printf("leader: node %s joined the swarm again as %s", d.Node, n.ID)
		return true, nil
	}
	sw, err := l.Engine.SwarmInspect(ctx, client.SwarmInspectOptions{})
	if err != nil {
		return false, err
	}
	info, err := l.Engine.Info(ctx, client.InfoOptions{})
	if err != nil {
		return false, err
	}
	req := api.RejoinRequest{JoinToken: sw.Swarm.JoinTokens.Worker, Removed: d.NodeID, AdvertiseAddr: d.Addr}
	for _, p := range info.Info.Swarm.RemoteManagers {
		req.RemoteAddrs = append(req.RemoteAddrs, p.Addr)
	}
	a, err := l.agent(v.Node)
	if err != nil {
		return false, err
	}
	res, err := a.Rejoin(ctx, req)
	if err != nil {
		return false, fmt.Errorf("joining: %w", err)
	}
	log.Printf("leader: node %s is back and fenced; it joined the swarm again as %s", d.Node, res.NodeID)
	return false, nil
}
