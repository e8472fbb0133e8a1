package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	units "github.com/docker/go-units"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/cliplugin/internal/specfile"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/scheduler"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// parallel bounds how many containers are created at once.
const parallel = 8

// CreateOptions are what a create asks for besides its services.
type CreateOptions struct {
	// Builds are images to build with the manager's engine before
	// anything is made (Compose's build).
	Builds []specfile.Build
	// WaitTimeout bounds each wait for the services a wave depends on
	// (0: DefaultWaitTimeout).
	WaitTimeout time.Duration
	// Networks are a Compose file's networks, made (or found) before
	// anything else; Files the contents of its secrets and configs, which
	// go to the agents of the replicas that mount them (networks.go).
	Networks []spec.Network
	Files    []api.FileContent
	// Copies are the contents of the files beside a Compose file, by
	// service (spec.Copy), for the agents of its replicas.
	Copies map[string][]api.CopyContent
	// intoProject makes the services in a project that exists (Apply).
	intoProject bool
}

// Create creates services and their replicas. Every definition is checked
// and every replica placed before anything is made (and the images built);
// replicas are then made in the order of their services' dependencies. If
// a replica cannot be created, or a dependency never gets ready,
// everything this call made is removed again.
func (d *Deployer) Create(ctx context.Context, svcs []spec.Service, opts CreateOptions) ([]api.FleetContainer, error) {
	p, err := d.prepare(ctx, svcs, opts.intoProject)
	if err != nil {
		return nil, err
	}
	// Built first: a build that fails leaves nothing, not even networks.
	built, err := d.build(ctx, opts.Builds)
	if err != nil {
		return nil, err
	}
	if err := d.attach(ctx, p.work, opts); err != nil {
		return nil, err
	}
	if err := d.bringImages(ctx, p.inv, p.work, built); err != nil {
		return nil, err
	}
	for i, s := range svcs {
		if err := swarmstore.SaveService(ctx, d.Fleet.Manager, s); err != nil {
			d.undo(ctx, svcs[:i], nil)
			return nil, err
		}
	}
	if err := d.claim(ctx, p.inv, p.work); err != nil {
		d.undo(ctx, svcs, nil)
		return nil, err
	}
	made, err := d.runWaves(ctx, p, svcs, opts.WaitTimeout)
	if err != nil {
		d.release(ctx, p.work)
		d.undo(ctx, svcs, made)
		return nil, err
	}
	return made, nil
}

// prepared is a create checked and placed, with nothing made yet.
type prepared struct {
	inv   fleet.Inventory
	work  []job
	waves [][]string // spec.Order
}

// prepare checks the definitions against each other, the stored ones and
// the fleet, and places every replica. It changes nothing.
func (d *Deployer) prepare(ctx context.Context, svcs []spec.Service, intoProject bool) (*prepared, error) {
	seen := map[string]bool{}
	for i := range svcs {
		s := &svcs[i]
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("service %s: %w", s.Name, err)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("service %s is defined twice", s.Name)
		}
		seen[s.Name] = true
	}
	waves, err := spec.Order(svcs)
	if err != nil {
		return nil, err
	}
	stored, err := swarmstore.ListServices(ctx, d.Fleet.Manager)
	if err != nil {
		return nil, err
	}
	if err := checkNew(svcs, stored, intoProject); err != nil {
		return nil, err
	}
	inv, err := d.inventory(ctx)
	if err != nil {
		return nil, err
	}
	network, err := swarmstore.FindNetwork(ctx, d.Fleet.Manager)
	if err != nil {
		return nil, err
	}
	p := &prepared{inv: inv, waves: waves}
	var infos []fleet.NodeInfo
	sched := schedulerNodes(inv)
	for _, s := range svcs {
		if err := checkAgainstFleet(inv, s); err != nil {
			return nil, fmt.Errorf("service %s: %w", s.Name, err)
		}
		if needsNewerAgents(s) {
			if infos == nil {
				infos = inv.Infos(ctx)
			}
			if err := checkAgentAPI(s, infos); err != nil {
				return nil, fmt.Errorf("service %s: %w", s.Name, err)
			}
		}
		jobs, err := plan(sched, inv, s, s.Replicas, network.Name)
		if err != nil {
			return nil, err
		}
		p.work = append(p.work, jobs...)
	}
	return p, nil
}

// claim claims each job's replica name fleet-wide (swarmstore.ClaimReplica),
// moving a job to the next free number where another command got there
// first. On failure it drops what it claimed.
func (d *Deployer) claim(ctx context.Context, inv fleet.Inventory, jobs []job) error {
	exists := func(name string) bool { _, _, ok := inv.Find(name); return ok }
	planned := map[string]bool{}
	for _, j := range jobs {
		planned[j.req.Name] = true
	}
	for i := range jobs {
		svc, n := jobs[i].req.Service.Name, jobs[i].req.Replica
		for {
			ok, err := swarmstore.ClaimReplica(ctx, d.Fleet.Manager, svc, n, jobs[i].node.Hostname, exists)
			if err != nil {
				d.release(ctx, jobs[:i])
				return fmt.Errorf("claiming the name %s.%d: %w", svc, n, err)
			}
			if ok {
				break
			}
			for n++; planned[replicaName(svc, n)] || exists(replicaName(svc, n)); n++ {
			}
		}
		jobs[i].req.Replica, jobs[i].req.Name = n, replicaName(svc, n)
		planned[jobs[i].req.Name] = true
	}
	return nil
}

// release drops the name claims of jobs whose replicas are not (or no
// longer) there.
func (d *Deployer) release(ctx context.Context, jobs []job) {
	ctx = context.WithoutCancel(ctx)
	for _, j := range jobs {
		_ = swarmstore.ReleaseReplica(ctx, d.Fleet.Manager, j.req.Name)
	}
}

func replicaName(service string, n int) string { return service + "." + strconv.Itoa(n) }

// job is one replica to create on one node.
type job struct {
	node *fleet.NodeState
	req  api.CreateRequest
}

// plan places n new replicas of s and names them with the lowest free
// replica numbers.
func plan(sched []scheduler.Node, inv fleet.Inventory, s spec.Service, n int, network string) ([]job, error) {
	where, err := scheduler.Place(sched, scheduler.RequestOf(s), n)
	if err != nil {
		return nil, fmt.Errorf("cannot place %d replica(s) of %s: %w", n, s.Name, err)
	}
	used := map[int]bool{}
	for _, c := range inv.Containers(s.Name) {
		used[c.Replica] = true
	}
	jobs := make([]job, 0, n)
	next := 1
	for _, host := range where {
		for used[next] {
			next++
		}
		used[next] = true
		jobs = append(jobs, job{node: inv.ByName(host), req: api.CreateRequest{
			Name: replicaName(s.Name, next), Replica: next, Network: network, Service: s,
		}})
	}
	return jobs, nil
}

// run creates the replicas, several at a time. A node that refuses because
// another command took its cores first gets the replica re-planned once on
// a fresh reading of the fleet.
func (d *Deployer) run(ctx context.Context, jobs []job) ([]api.FleetContainer, error) {
	return eachJob(jobs, parallel, func(j job) (api.FleetContainer, error) {
		c, err := d.createOne(ctx, j)
		if err == nil {
			d.say("%s created on %s", c.Name, c.Node)
		}
		return c, err
	})
}

// eachJob runs do for every job, at most limit at once, and returns what
// they made, sorted by name, and all their errors.
func eachJob(jobs []job, limit int, do func(job) (api.FleetContainer, error)) ([]api.FleetContainer, error) {
	var (
		mu   sync.Mutex
		made []api.FleetContainer
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, limit)
	)
	for _, j := range jobs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := do(j)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			made = append(made, c)
		})
	}
	wg.Wait()
	sort.Slice(made, func(i, j int) bool { return made[i].Name < made[j].Name })
	return made, errors.Join(errs...)
}

func (d *Deployer) createOne(ctx context.Context, j job) (api.FleetContainer, error) {
	target := j.node
	for attempt := 0; ; attempt++ {
		c, err := target.Agent.Create(ctx, j.req)
		if !errdefs.IsConflict(err) || attempt == raceRetries {
			return c, err
		}
		// Another command took the node's cores or memory first: look at
		// the fleet again and place the replica anew.
		inv, ierr := d.inventory(ctx)
		if ierr != nil {
			return c, err
		}
		where, perr := scheduler.Place(schedulerNodes(inv), scheduler.RequestOf(j.req.Service), 1)
		if perr != nil {
			return c, fmt.Errorf("cannot place %s: %w", j.req.Name, perr)
		}
		target = inv.ByName(where[0])
	}
}

// raceRetries bounds how often a replica is placed anew after losing a race
// for a node's cores to a concurrent command.
const raceRetries = 5

// undo removes what a failed create made: its containers and definitions.
func (d *Deployer) undo(ctx context.Context, svcs []spec.Service, made []api.FleetContainer) {
	ctx = context.WithoutCancel(ctx)
	inv, err := d.inventory(ctx)
	if err == nil {
		for _, c := range made {
			if n := inv.ByName(c.Node); n != nil && n.Agent != nil {
				_ = n.Agent.Remove(ctx, c.Name)
			}
		}
	}
	for _, s := range svcs {
		_ = swarmstore.DeleteService(ctx, d.Fleet.Manager, s.Name)
		_ = swarmstore.ReleaseReplicas(ctx, d.Fleet.Manager, s.Name)
	}
}

// checkAgainstFleet refuses, naming the field, what no node of this fleet
// could ever give, before the scheduler explains what is merely busy.
func checkAgainstFleet(inv fleet.Inventory, s spec.Service) error {
	var maxCores int
	var maxMem int64
	var all cpuset.Set
	for _, n := range inv {
		maxCores = max(maxCores, len(n.Ledger.Cores))
		maxMem = max(maxMem, n.Ledger.MemTotal)
		all = cpuset.Of(append(all, n.Ledger.Cores...)...)
	}
	if s.Node != "" && inv.ByName(s.Node) == nil {
		var names []string
		for _, n := range inv.Nodes() {
			names = append(names, n.Hostname)
		}
		return fmt.Errorf("node %q: no such node in the fleet (nodes: %v)", s.Node, names)
	}
	if s.Cores > maxCores {
		return fmt.Errorf("cpus %d: no node has that many cores (the largest has %d)", s.Cores, maxCores)
	}
	if set, _ := cpuset.Parse(s.Cpuset); len(set.Minus(all)) > 0 {
		return fmt.Errorf("cpuset-cpus %s: no node has core %s (cores %s)", s.Cpuset, set.Minus(all), all)
	}
	if s.Memory > maxMem {
		return fmt.Errorf("memory %s: no node has that much memory (the largest has %s)", units.BytesSize(float64(s.Memory)), units.BytesSize(float64(maxMem)))
	}
	if s.Replicas > 0 && slices.IndexFunc(inv, func(n *fleet.NodeState) bool { return n.Err == nil }) < 0 {
		return errors.New("no node's agent answers")
	}
	return nil
}
