// Package describe gathers what `docker fleet describe` shows from the swarm
// and from every node's agent, and renders it.
package describe

import (
	"context"
	"sync"
	"time"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/api"
)

// FleetView is the whole fleet.
type FleetView struct {
	Manager   string        `json:"manager"`
	ClusterID string        `json:"clusterID,omitempty"`
	Created   time.Time     `json:"created"`
	Network   fleet.Network `json:"network"`
	Nodes     []NodeView    `json:"nodes"`
	Services  []Service     `json:"services"`
	Totals    Totals        `json:"totals"`
}

// Service is a fleet service's summary.
type Service struct {
	Name     string `json:"name"`
	Replicas int    `json:"replicas"`
	Running  int    `json:"running"`
}

// Totals sum up the fleet.
type Totals struct {
	Nodes      int     `json:"nodes"`
	ReadyNodes int     `json:"migrationReadyNodes"`
	CPUs       int     `json:"cpus"`
	Memory     int64   `json:"memory"`
	Containers int     `json:"containers"`
	Migrations int     `json:"migrations"`
	Uptime     float64 `json:"uptimeSeconds"`
}

// NodeView is one node with what its agent reports.
type NodeView struct {
	fleet.Node
	Info    *api.Info    `json:"info,omitempty"`
	Metrics *api.Metrics `json:"metrics,omitempty"`
	// Error says why the agent could not be asked.
	Error string `json:"error,omitempty"`
}

// Fleet gathers the fleet view, asking all agents at once.
func Fleet(ctx context.Context, f *fleet.Fleet) (*FleetView, error) {
	nodes, err := fleet.Nodes(ctx, f.Manager)
	if err != nil {
		return nil, err
	}
	network, err := fleet.FindNetwork(ctx, f.Manager)
	if err != nil {
		return nil, err
	}
	v := &FleetView{Created: f.Created, Network: network, Nodes: make([]NodeView, len(nodes)), Services: []Service{}}
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { v.Nodes[i] = gatherNode(ctx, f, n) })
		if n.Leader {
			v.Manager = n.Hostname
		}
	}
	wg.Wait()
	v.Totals.Uptime = time.Since(f.Created).Seconds()
	for _, n := range v.Nodes {
		v.Totals.Nodes++
		if n.Info != nil {
			v.Totals.CPUs += n.Info.NCPU
			v.Totals.Memory += n.Info.MemTotal
			if n.Info.Migration.Ready {
				v.Totals.ReadyNodes++
			}
		}
		if n.Metrics != nil {
			v.Totals.Containers += len(n.Metrics.Containers)
		}
	}
	return v, nil
}

// Node gathers one node's view.
func Node(ctx context.Context, f *fleet.Fleet, n fleet.Node) NodeView {
	return gatherNode(ctx, f, n)
}

func gatherNode(ctx context.Context, f *fleet.Fleet, n fleet.Node) NodeView {
	v := NodeView{Node: n}
	agent, err := f.Agent(n)
	if err != nil {
		v.Error = err.Error()
		return v
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var (
		info    api.Info
		metrics api.Metrics
		ierr    error
		merr    error
		wg      sync.WaitGroup
	)
	wg.Go(func() { info, ierr = agent.Info(ctx) })
	wg.Go(func() { metrics, merr = agent.Metrics(ctx) })
	wg.Wait()
	if ierr == nil {
		v.Info = &info
	}
	if merr == nil {
		v.Metrics = &metrics
	}
	if err := firstErr(ierr, merr); err != nil {
		v.Error = err.Error()
	}
	return v
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
