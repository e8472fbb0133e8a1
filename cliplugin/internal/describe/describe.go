// Package describe gathers what `docker fleet describe` shows from the swarm
// and from every node's agent, and renders it.
package describe

import (
	"context"
	"sync"
	"time"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// FleetView is the whole fleet.
type FleetView struct {
	Manager   string             `json:"manager"`
	ClusterID string             `json:"clusterID,omitempty"`
	Created   time.Time          `json:"created"`
	Network   swarmstore.Network `json:"network"`
	Nodes     []NodeView         `json:"nodes"`
	Services  []ServiceView      `json:"services"`
	Totals    Totals             `json:"totals"`
	Failover  Failover           `json:"failover"`
	// Rebalance is the automatic rebalance (init --rebalance-every).
	Rebalance swarmstore.AutoRebalance `json:"rebalance"`
}

// Failover is the fleet's dead-node handling: its setting, what it did,
// and the nodes it holds dead now.
type Failover struct {
	After time.Duration `json:"after"`
	swarmstore.Stats
	Down []swarmstore.Down `json:"down"`
}

// ServiceView is a fleet service: its definition, and its replicas per node.
type ServiceView struct {
	Name       string               `json:"name"`
	Desired    int                  `json:"desired"`
	Running    int                  `json:"running"`
	PerNode    map[string]int       `json:"perNode"`
	Spec       spec.Service         `json:"spec"`
	Containers []api.FleetContainer `json:"containers"`
	// Update is where its newest update stands; Previous the definition
	// before it (--rollback's).
	Update   *swarmstore.Update `json:"update,omitempty"`
	Previous *spec.Service      `json:"previous,omitempty"`
}

// ContainerView is a fleet container with its usage and where it has been.
type ContainerView struct {
	api.ContainerDetail
	// Migrations is its migration history, oldest first.
	Migrations []api.Migration `json:"migrations"`
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
	swarmstore.Node
	Info    *api.Info    `json:"info,omitempty"`
	Metrics *api.Metrics `json:"metrics,omitempty"`
	Ledger  *api.Ledger  `json:"ledger,omitempty"`
	// Error says why the agent could not be asked.
	Error string `json:"error,omitempty"`
}

// Fleet gathers the fleet view, asking all agents at once.
func Fleet(ctx context.Context, f *fleet.Fleet) (*FleetView, error) {
	nodes, err := swarmstore.Nodes(ctx, f.Manager)
	if err != nil {
		return nil, err
	}
	network, err := swarmstore.FindNetwork(ctx, f.Manager)
	if err != nil {
		return nil, err
	}
	svcs, err := swarmstore.ListServices(ctx, f.Manager)
	if err != nil {
		return nil, err
	}
	migrations, err := f.AllMigrations(ctx)
	if err != nil {
		return nil, err
	}
	fo, err := failover(ctx, f)
	if err != nil {
		return nil, err
	}
	auto, err := swarmstore.LoadAutoRebalance(ctx, f.Manager)
	if err != nil {
		return nil, err
	}
	v := &FleetView{Failover: fo, Rebalance: auto, Created: f.Created, Network: network, Nodes: make([]NodeView, len(nodes)), Services: []ServiceView{}}
	for _, n := range nodes {
		if n.Leader {
			v.Manager = n.Hostname
		}
	}
	fleet.EachNode(len(nodes), func(i int) { v.Nodes[i] = gatherNode(ctx, f, nodes[i]) })
	var inv fleet.Inventory
	for _, n := range v.Nodes {
		if n.Ledger != nil {
			inv = append(inv, &fleet.NodeState{Node: n.Node, Ledger: *n.Ledger})
		}
	}
	for _, s := range svcs {
		v.Services = append(v.Services, service(s, inv))
	}
	v.Totals.Uptime = time.Since(f.Created).Seconds()
	v.Totals.Migrations = len(migrations)
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

func failover(ctx context.Context, f *fleet.Fleet) (Failover, error) {
	var fo Failover
	var err error
	if fo.After, err = swarmstore.FailoverAfter(ctx, f.Manager); err != nil {
		return fo, err
	}
	if fo.Stats, err = swarmstore.ReadStats(ctx, f.Manager); err != nil {
		return fo, err
	}
	fo.Down, err = swarmstore.DownNodes(ctx, f.Manager)
	return fo, err
}

// infoMaxAge is how old the engine's own facts in a node's view may be:
// describe shows them, nothing decides on them, and reading them afresh
// on every node costs the fleet's engines more than the rest of describe.
const infoMaxAge = time.Minute

// Node gathers one node's view.
func Node(ctx context.Context, f *fleet.Fleet, n swarmstore.Node) NodeView {
	return gatherNode(ctx, f, n)
}

func gatherNode(ctx context.Context, f *fleet.Fleet, n swarmstore.Node) NodeView {
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
		ledger  api.Ledger
		ierr    error
		merr    error
		lerr    error
		wg      sync.WaitGroup
	)
	wg.Go(func() { info, ierr = agent.RecentInfo(ctx, infoMaxAge) })
	wg.Go(func() { metrics, merr = agent.Metrics(ctx) })
	wg.Go(func() { ledger, lerr = agent.Ledger(ctx) })
	wg.Wait()
	if ierr == nil {
		v.Info = &info
	}
	if merr == nil {
		v.Metrics = &metrics
	}
	if lerr == nil {
		v.Ledger = &ledger
	}
	if err := firstErr(ierr, merr, lerr); err != nil {
		v.Error = err.Error()
	}
	return v
}

// Service gathers one service's view.
func Service(ctx context.Context, f *fleet.Fleet, s spec.Service) (ServiceView, error) {
	inv, err := f.Inventory(ctx)
	if err != nil {
		return ServiceView{}, err
	}
	v := service(s, inv)
	if st, err := swarmstore.LoadServiceState(ctx, f.Manager, s.Name); err == nil {
		v.Update, v.Previous = st.Update, st.Previous
	}
	return v, nil
}

func service(s spec.Service, inv fleet.Inventory) ServiceView {
	v := ServiceView{Name: s.Name, Desired: s.Replicas, Spec: s, PerNode: map[string]int{}, Containers: inv.Containers(s.Name)}
	for _, c := range v.Containers {
		if c.State == "running" {
			v.Running++
			v.PerNode[c.Node]++
		}
	}
	if v.Containers == nil {
		v.Containers = []api.FleetContainer{}
	}
	return v
}

// Container gathers one container's view; ok is false when there is no
// fleet container of that name.
func Container(ctx context.Context, f *fleet.Fleet, name string) (ContainerView, bool, error) {
	inv, err := f.Inventory(ctx)
	if err != nil {
		return ContainerView{}, false, err
	}
	_, n, ok := inv.Find(name)
	if !ok {
		return ContainerView{}, false, inv.Unreachable()
	}
	d, err := n.Agent.Detail(ctx, name)
	if err != nil {
		return ContainerView{}, true, err
	}
	history, err := f.History(ctx, name)
	if err != nil {
		return ContainerView{}, true, err
	}
	return ContainerView{ContainerDetail: d, Migrations: history}, true, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
