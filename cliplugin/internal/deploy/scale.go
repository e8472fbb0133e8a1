package deploy

import (
	"context"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/scheduler"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// ScaleResult is what scale did to one service.
type ScaleResult struct {
	Service string               `json:"service"`
	From    int                  `json:"from"`
	To      int                  `json:"to"`
	Created []api.FleetContainer `json:"created,omitempty"`
	Removed []string             `json:"removed,omitempty"`
}

// Scale brings each service to its count of replicas: up from its stored
// definition, down from the busiest nodes first.
func (d *Deployer) Scale(ctx context.Context, targets []ScaleTarget) ([]ScaleResult, error) {
	for _, t := range targets {
		if _, err := swarmstore.LoadService(ctx, d.Fleet.Manager, t.Service); err != nil {
			return nil, err
		}
		if err := refuseWhileUpdating(ctx, d, t.Service, "scale"); err != nil {
			return nil, err
		}
	}
	var out []ScaleResult
	for _, t := range targets {
		r, err := d.scaleOne(ctx, t)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// ScaleTarget is one SERVICE=N (or SERVICE=+N, Add) argument.
type ScaleTarget struct {
	Service  string
	Replicas int
	Add      bool
}

func (d *Deployer) scaleOne(ctx context.Context, t ScaleTarget) (ScaleResult, error) {
	s, err := swarmstore.LoadService(ctx, d.Fleet.Manager, t.Service)
	if err != nil {
		return ScaleResult{}, err
	}
	inv, err := d.inventory(ctx)
	if err != nil {
		return ScaleResult{}, err
	}
	// Counting replicas on a node that does not answer would be a guess.
	if err := inv.Unreachable(); err != nil {
		return ScaleResult{}, fmt.Errorf("cannot count the replicas of %s: %w", s.Name, err)
	}
	current := inv.Containers(s.Name)
	if t.Add {
		t.Replicas += len(current)
	}
	res := ScaleResult{Service: s.Name, From: len(current), To: t.Replicas}
	if t.Replicas > 1 && len(s.Aliases) > 0 {
		return res, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("service %s has a container_name (%s): it keeps one replica, or two would answer to that name", s.Name, strings.Join(s.Aliases, ", ")))
	}
	switch {
	case t.Replicas > len(current):
		network, err := swarmstore.FindNetwork(ctx, d.Fleet.Manager)
		if err != nil {
			return res, err
		}
		jobs, err := plan(schedulerNodes(inv), inv, s, t.Replicas-len(current), network.Name)
		if err != nil {
			return res, err
		}
		if err := d.bringImages(ctx, inv, jobs, nil); err != nil {
			return res, err
		}
		if err := d.claim(ctx, inv, jobs); err != nil {
			return res, err
		}
		made, err := d.run(ctx, jobs)
		res.Created = made
		if err != nil {
			d.release(ctx, jobs)
			d.undo(ctx, nil, made)
			res.Created = nil
			return res, err
		}
	case t.Replicas < len(current):
		var reps []scheduler.Replica
		for _, c := range current {
			reps = append(reps, scheduler.Replica{Name: c.Name, Node: c.Node, Index: c.Replica})
		}
		for _, r := range scheduler.Remove(schedulerNodes(inv), reps, len(current)-t.Replicas) {
			if err := d.removeContainer(ctx, inv, inv.ByName(r.Node), r.Name); err != nil {
				return res, err
			}
			res.Removed = append(res.Removed, r.Name)
			d.say("%s removed from %s", r.Name, r.Node)
		}
	}
	if t.Add {
		// Added to what is recorded, not set: a concurrent +N counts too.
		return res, swarmstore.AddReplicas(ctx, d.Fleet.Manager, s.Name, len(res.Created))
	}
	return res, swarmstore.SetReplicas(ctx, d.Fleet.Manager, s.Name, t.Replicas)
}
