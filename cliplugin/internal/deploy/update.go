package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/scheduler"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// Orders and failure actions of an update, as docker service update names
// them.
const (
	OrderStopFirst  = spec.OrderStopFirst
	OrderStartFirst = spec.OrderStartFirst
	ActionRollback  = spec.ActionRollback
	ActionPause     = spec.ActionPause
)

// DefaultMonitor is how long a replacement without a healthcheck must keep
// running to count as up (docker service update's --update-monitor).
const DefaultMonitor = 5 * time.Second

// UpdateOptions are how an update rolls.
type UpdateOptions struct {
	Parallelism   int
	Delay         time.Duration
	Monitor       time.Duration
	Order         string
	FailureAction string
	// Files and Copies are the contents of the service's secrets, configs
	// and files beside its Compose file, which only a Compose file applied
	// again has (CreateOptions).
	Files  []api.FileContent
	Copies map[string][]api.CopyContent
}

// from takes what was not given from the service's update_config.
func (o *UpdateOptions) from(c *spec.UpdateConfig) {
	if c == nil {
		return
	}
	if o.Parallelism == 0 {
		o.Parallelism = c.Parallelism
	}
	if o.Delay == 0 {
		o.Delay = time.Duration(c.Delay)
	}
	if o.Monitor == 0 {
		o.Monitor = time.Duration(c.Monitor)
	}
	if o.Order == "" {
		o.Order = c.Order
	}
	if o.FailureAction == "" {
		o.FailureAction = c.FailureAction
	}
}

// config is how the update rolls, as its record keeps it.
func (o *UpdateOptions) config() spec.UpdateConfig {
	return spec.UpdateConfig{Parallelism: o.Parallelism, Delay: spec.Duration(o.Delay), Monitor: spec.Duration(o.Monitor),
		Order: o.Order, FailureAction: o.FailureAction}
}

func (o *UpdateOptions) defaults() error {
	if o.Parallelism == 0 {
		o.Parallelism = 1
	}
	if o.Parallelism < 0 {
		return fmt.Errorf("update-parallelism %d: at least 1", o.Parallelism)
	}
	if o.Monitor == 0 {
		o.Monitor = DefaultMonitor
	}
	switch o.Order {
	case "", OrderStopFirst:
		o.Order = OrderStopFirst
	case OrderStartFirst:
	default:
		return fmt.Errorf("update-order %q: use stop-first or start-first", o.Order)
	}
	switch o.FailureAction {
	case "":
		o.FailureAction = ActionRollback
	case ActionRollback, ActionPause:
	default:
		return fmt.Errorf("update-failure-action %q: use rollback or pause", o.FailureAction)
	}
	return nil
}

// UpdateResult is what an update did.
type UpdateResult struct {
	Service  string               `json:"service"`
	From     int                  `json:"fromRevision"`
	To       int                  `json:"toRevision"`
	State    string               `json:"state"`
	Reason   string               `json:"reason,omitempty"`
	Replaced []api.FleetContainer `json:"replaced,omitempty"`
}

// Update changes a service's definition with change and replaces its
// replicas with the new one, a few at a time, each kept under its name
// and on its node where it fits. A replacement that does not come up
// stops the update, and by default rolls every replaced replica back. With
// change nil, it finishes an update that did not end (a CLI interrupted,
// a paused update).
func (d *Deployer) Update(ctx context.Context, name string, change func(*spec.Service) error, o UpdateOptions) (UpdateResult, error) {
	st, err := swarmstore.LoadServiceState(ctx, d.Fleet.Manager, name)
	if err != nil {
		return UpdateResult{}, err
	}
	// A paused update waits for its operator: a change starts a new update
	// from the stored definition, which replaces every replica.
	if st.Update.Running() && (change == nil || st.Update.State != swarmstore.UpdatePaused) {
		if change != nil {
			return UpdateResult{}, errdefs.ErrConflict.WithMessage(fmt.Sprintf("service %s: %s (%s); run docker fleet update %s to finish it first, or docker fleet update --rollback %s to undo it",
				name, swarmstore.ErrUpdateRunning, describeUpdate(st.Update), name, name))
		}
		return d.resume(ctx, st, o)
	}
	if change == nil {
		return UpdateResult{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("service %s: nothing to change and no update to finish: give --image, --env-add, … (docker fleet update --help)", name))
	}
	next, err := changed(st, change)
	if err != nil {
		return UpdateResult{}, err
	}
	o.from(next.UpdateConfig)
	if err := o.defaults(); err != nil {
		return UpdateResult{}, err
	}
	if req, ok := inPlace(st.Service, next); ok {
		return d.resizeInPlace(ctx, st.Service, req)
	}
	return d.start(ctx, st.Service, next, st.Previous, o, swarmstore.UpdateRolling)
}

// Rollback puts a service back on the definition before its newest update
// (or resize), replica by replica as an update does.
func (d *Deployer) Rollback(ctx context.Context, name string, o UpdateOptions) (UpdateResult, error) {
	st, err := swarmstore.LoadServiceState(ctx, d.Fleet.Manager, name)
	if err != nil {
		return UpdateResult{}, err
	}
	o.from(st.Service.UpdateConfig)
	if err := o.defaults(); err != nil {
		return UpdateResult{}, err
	}
	if st.Previous == nil {
		return UpdateResult{}, errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf("service %s has no previous definition to roll back to: it was never updated", name))
	}
	if st.Update != nil && st.Update.State == swarmstore.UpdateRollingBack {
		return d.resume(ctx, st, o)
	}
	if req, ok := inPlace(st.Service, *st.Previous); ok {
		return d.resizeInPlace(ctx, st.Service, req)
	}
	return d.start(ctx, st.Service, *st.Previous, nil, o, swarmstore.UpdateRollingBack)
}

// changed is the service's definition with change applied, checked, under
// the next revision.
func changed(st swarmstore.ServiceState, change func(*spec.Service) error) (spec.Service, error) {
	cur := st.Service
	next, err := clone(cur)
	if err != nil {
		return next, err
	}
	if err := change(&next); err != nil {
		return next, err
	}
	next.Revision = cur.Revision + 1
	if st.Previous != nil && st.Previous.Revision >= next.Revision {
		next.Revision = st.Previous.Revision + 1
	}
	if err := next.Validate(); err != nil {
		return next, fmt.Errorf("service %s: %w", cur.Name, err)
	}
	a, b := next, cur
	a.Revision, b.Revision = 0, 0
	if reflect.DeepEqual(a, b) {
		return next, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("service %s: nothing changes: the definition is already so", cur.Name))
	}
	if len(next.Aliases) > 0 && next.Replicas > 1 {
		return next, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("service %s has a container_name: one replica only", cur.Name))
	}
	return next, nil
}

func clone(s spec.Service) (spec.Service, error) {
	var out spec.Service
	b, err := json.Marshal(s)
	if err == nil {
		err = json.Unmarshal(b, &out)
	}
	out.Replicas = s.Replicas
	return out, err
}

// start records an update from cur to next and rolls it; restore is the
// previous definition to keep if it is rolled back by itself.
func (d *Deployer) start(ctx context.Context, cur, next spec.Service, restore *spec.Service, o UpdateOptions, state string) (UpdateResult, error) {
	if err := needsContents(next, o); err != nil {
		return UpdateResult{}, err
	}
	u := swarmstore.Update{State: state, From: cur.Revision, To: next.Revision, UpdateConfig: o.config(),
		Restore: restore, StartedAt: time.Now().UTC().Format(time.RFC3339)}
	if err := swarmstore.StartUpdate(ctx, d.Fleet.Manager, &cur, next, u); err != nil {
		if errors.Is(err, swarmstore.ErrUpdateRunning) {
			return UpdateResult{}, errdefs.ErrConflict.WithMessage(err.Error() + "; finish it with docker fleet update " + cur.Name)
		}
		return UpdateResult{}, err
	}
	return d.drive(ctx, cur, next, u, o)
}

// resume carries on an update that did not end, as it was started.
func (d *Deployer) resume(ctx context.Context, st swarmstore.ServiceState, o UpdateOptions) (UpdateResult, error) {
	u := *st.Update
	if u.State == swarmstore.UpdatePaused {
		u.State, u.PausedFrom, u.Reason = u.PausedFrom, "", ""
		if u.State == "" {
			u.State = swarmstore.UpdateRolling
		}
	}
	o = UpdateOptions{Files: o.Files, Copies: o.Copies}
	o.from(&u.UpdateConfig)
	if err := o.defaults(); err != nil {
		return UpdateResult{}, err
	}
	if err := needsContents(st.Service, o); err != nil {
		return UpdateResult{}, err
	}
	if err := swarmstore.SetUpdate(ctx, d.Fleet.Manager, st.Service.Name, u); err != nil {
		return UpdateResult{}, err
	}
	d.say("resuming the update of %s to revision %d", st.Service.Name, u.To)
	prev := st.Service
	if st.Previous != nil {
		prev = *st.Previous
	}
	return d.drive(ctx, prev, st.Service, u, o)
}

// drive rolls the service from cur to next; on a failure it pauses, or
// rolls back to cur (a rollback that fails pauses).
func (d *Deployer) drive(ctx context.Context, cur, next spec.Service, u swarmstore.Update, o UpdateOptions) (UpdateResult, error) {
	res := UpdateResult{Service: next.Name, From: u.From, To: u.To}
	replaced, err := d.roll(ctx, next, o)
	res.Replaced = replaced
	if err == nil {
		u.State, u.EndedAt = endState(u.State), time.Now().UTC().Format(time.RFC3339)
		res.State = u.State
		return res, swarmstore.SetUpdate(context.WithoutCancel(ctx), d.Fleet.Manager, next.Name, u)
	}
	// Read before it is dropped: an interrupted update pauses, and is
	// not rolled back past the operator's ^C.
	interrupted := ctx.Err() != nil
	ctx = context.WithoutCancel(ctx)
	u.Reason = err.Error()
	if interrupted || o.FailureAction == ActionPause || u.State == swarmstore.UpdateRollingBack {
		u.PausedFrom, u.State = u.State, swarmstore.UpdatePaused
		res.State, res.Reason = u.State, u.Reason
		_ = swarmstore.SetUpdate(ctx, d.Fleet.Manager, next.Name, u)
		return res, fmt.Errorf("the update of %s paused: %w; docker fleet update %s finishes it, docker fleet update --rollback %s undoes it", next.Name, err, next.Name, next.Name)
	}
	d.say("the update of %s failed: %v; rolling back to revision %d", next.Name, err, cur.Revision)
	back := swarmstore.Update{State: swarmstore.UpdateRollingBack, From: next.Revision, To: cur.Revision, UpdateConfig: u.UpdateConfig,
		Reason: u.Reason, StartedAt: u.StartedAt}
	if serr := swarmstore.StartUpdate(ctx, d.Fleet.Manager, u.Restore, cur, back); serr != nil {
		return res, fmt.Errorf("the update of %s failed: %w; recording its rollback failed too: %v", next.Name, err, serr)
	}
	if _, rerr := d.roll(ctx, cur, o); rerr != nil {
		back.PausedFrom, back.State = back.State, swarmstore.UpdatePaused
		_ = swarmstore.SetUpdate(ctx, d.Fleet.Manager, next.Name, back)
		return res, fmt.Errorf("the update of %s failed: %w; its rollback failed too: %v; docker fleet update %s tries the rollback again", next.Name, err, rerr, next.Name)
	}
	back.State, back.EndedAt = swarmstore.UpdateRolledBack, time.Now().UTC().Format(time.RFC3339)
	_ = swarmstore.SetUpdate(ctx, d.Fleet.Manager, next.Name, back)
	res.State, res.Reason = back.State, u.Reason
	return res, errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf("the update of %s failed and was rolled back, every replica is on revision %d again: %v", next.Name, cur.Revision, err))
}

func endState(running string) string {
	if running == swarmstore.UpdateRollingBack {
		return swarmstore.UpdateRolledBack
	}
	return swarmstore.UpdateCompleted
}

// limitFields are the definition's fields (JSON names) that resize
// changes in place.
var limitFields = []string{"cores", "cpuset", "memory", "memorySwap"}

// inPlace is the resize that takes a service from cur to next without
// replacing a replica, when only its cores and memory change and the
// engine can change them in place (not to no exclusive cores, nor to no
// memory limit).
func inPlace(cur, next spec.Service) (api.ResizeRequest, bool) {
	var req api.ResizeRequest
	fields := changedFields(cur, next)
	if len(fields) == 0 || slices.ContainsFunc(fields, func(f string) bool { return !slices.Contains(limitFields, f) }) {
		return req, false
	}
	if next.Cores != cur.Cores || next.Cpuset != cur.Cpuset {
		switch {
		case next.Cpuset != "":
			req.Cpuset = &next.Cpuset
		case next.Cores > 0:
			req.Cores = &next.Cores
		default:
			return req, false
		}
	}
	if next.Memory != cur.Memory {
		if next.Memory == 0 {
			return req, false
		}
		req.Memory = &next.Memory
	}
	if next.MemorySwap != cur.MemorySwap {
		req.MemorySwap = &next.MemorySwap
	}
	return req, true
}

// resizeInPlace changes a service's cores and memory as resize does: every
// replica keeps running, and the definition before is kept for --rollback.
func (d *Deployer) resizeInPlace(ctx context.Context, cur spec.Service, req api.ResizeRequest) (UpdateResult, error) {
	d.say("only cores and memory change: resizing the replicas of %s in place", cur.Name)
	done, err := d.Resize(ctx, cur.Name, req)
	if err != nil {
		return UpdateResult{}, err
	}
	return UpdateResult{Service: cur.Name, From: cur.Revision, To: cur.Revision, State: "resized in place", Replaced: done}, nil
}

// needsContents refuses to update a service whose replicas are given file
// contents that only its Compose file has.
func needsContents(s spec.Service, o UpdateOptions) error {
	if len(s.Files()) == 0 && len(s.Copies) == 0 {
		return nil
	}
	if _, err := filesOf(s, o.Files); err != nil || len(s.Copies) > 0 && o.Copies[s.Name] == nil {
		return errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf("service %s has secrets, configs or files beside its Compose file, whose contents only the file has: apply the file again (docker fleet create -f FILE) to update it", s.Name))
	}
	return nil
}

// slot is one replica name of a service: its container if it has one, and
// the node it is on or was made for.
type slot struct {
	name    string
	replica int
	node    string
	c       *api.FleetContainer
}

// slots are the service's replica names: those that have a container and
// those claimed with none (an update interrupted between the removal of
// a replica and the making of its successor).
func (d *Deployer) slots(ctx context.Context, inv fleet.Inventory, name string) ([]slot, error) {
	var out []slot
	seen := map[string]bool{}
	for _, c := range inv.Containers(name) {
		if c.Name != replicaName(name, c.Replica) {
			continue // a start-first update's successor (successors)
		}
		out = append(out, slot{name: c.Name, replica: c.Replica, node: c.Node, c: &c})
		seen[c.Name] = true
	}
	claims, err := swarmstore.Claims(ctx, d.Fleet.Manager)
	if err != nil {
		return nil, err
	}
	for _, cl := range claims {
		n, ok := strings.CutPrefix(cl.Name, name+".")
		i, err := strconv.Atoi(n)
		if !ok || err != nil || seen[cl.Name] {
			continue
		}
		out = append(out, slot{name: cl.Name, replica: i, node: cl.Node})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].replica < out[j].replica })
	return out, nil
}

// roll replaces every replica of s not on its revision, o.Parallelism at
// a time, waiting o.Delay between batches.
func (d *Deployer) roll(ctx context.Context, s spec.Service, o UpdateOptions) ([]api.FleetContainer, error) {
	inv, err := d.inventory(ctx)
	if err != nil {
		return nil, err
	}
	if err := inv.Unreachable(); err != nil {
		return nil, fmt.Errorf("cannot reach every replica of %s: %w", s.Name, err)
	}
	network, err := swarmstore.FindNetwork(ctx, d.Fleet.Manager)
	if err != nil {
		return nil, err
	}
	if err := d.settleSuccessors(ctx, inv, s); err != nil {
		return nil, err
	}
	if inv, err = d.inventory(ctx); err != nil {
		return nil, err
	}
	all, err := d.slots(ctx, inv, s.Name)
	if err != nil {
		return nil, err
	}
	var todo []job
	for _, sl := range all {
		if sl.c != nil && sl.c.Revision == s.Revision {
			continue
		}
		node := inv.ByName(sl.node)
		if node == nil || node.Err != nil {
			if node = firstLive(inv); node == nil {
				return nil, errors.New("no node's agent answers")
			}
		}
		todo = append(todo, job{node: node, req: api.CreateRequest{Name: sl.name, Replica: sl.replica, Network: network.Name, Service: s}})
	}
	if len(todo) == 0 {
		return nil, nil
	}
	if err := d.attach(ctx, todo, CreateOptions{Files: o.Files, Copies: o.Copies}); err != nil {
		return nil, err
	}
	if o.Order == OrderStartFirst {
		if err := roomForSuccessor(inv, s); err != nil {
			return nil, err
		}
	}
	// Every node has the image before the first replica stops.
	if err := d.bringImages(ctx, inv, todo, nil); err != nil {
		return nil, err
	}
	var replaced []api.FleetContainer
	for start := 0; start < len(todo); start += o.Parallelism {
		if start > 0 && o.Delay > 0 {
			select {
			case <-ctx.Done():
				return replaced, ctx.Err()
			case <-time.After(o.Delay):
			}
		}
		batch := todo[start:min(start+o.Parallelism, len(todo))]
		made, err := d.replaceBatch(ctx, inv, batch, o)
		replaced = append(replaced, made...)
		if err != nil {
			return replaced, err
		}
		d.say("overall progress: %d out of %d replicas of %s on revision %d", len(replaced), len(todo), s.Name, s.Revision)
	}
	return replaced, nil
}

func firstLive(inv fleet.Inventory) *fleet.NodeState {
	for _, n := range inv {
		if n.Err == nil && n.Agent != nil {
			return n
		}
	}
	return nil
}

// replaceBatch replaces a batch of replicas at once: each leaves the
// network's DNS and stops, then its successor is made under its name and
// must come up.
func (d *Deployer) replaceBatch(ctx context.Context, inv fleet.Inventory, batch []job, o UpdateOptions) ([]api.FleetContainer, error) {
	replace := d.stopFirst
	if o.Order == OrderStartFirst {
		replace = d.startFirst
	}
	return eachJob(batch, len(batch), func(j job) (api.FleetContainer, error) { return replace(ctx, inv, j, o.Monitor) })
}

// stopFirst retires the replica, then makes its successor under its name.
func (d *Deployer) stopFirst(ctx context.Context, inv fleet.Inventory, j job, monitor time.Duration) (api.FleetContainer, error) {
	if old, n, ok := inv.Find(j.req.Name); ok {
		if err := n.Agent.Retire(ctx, old.Name); err != nil && !errdefs.IsNotFound(err) {
			return api.FleetContainer{}, fmt.Errorf("stopping %s on %s: %w", old.Name, n.Hostname, err)
		}
	}
	c, err := d.createOne(ctx, j)
	if err != nil {
		return c, fmt.Errorf("%s: %w", j.req.Name, err)
	}
	d.say("%s replaced on %s (revision %d), waiting for it to come up", c.Name, c.Node, j.req.Service.Revision)
	if err := d.comesUp(ctx, inv, c, j.req.Service.Healthcheck != nil, monitor); err != nil {
		return c, err
	}
	return c, nil
}

// startFirst makes the replica's successor beside it under a name of its
// own, and once it is up retires the replica and promotes the successor.
func (d *Deployer) startFirst(ctx context.Context, inv fleet.Inventory, j job, monitor time.Duration) (api.FleetContainer, error) {
	final := j.req.Name
	j.req.Name, j.req.Successor = successorName(final, j.req.Service.Revision), final
	c, err := d.createOne(ctx, j)
	if err != nil {
		return c, fmt.Errorf("the successor of %s: %w", final, err)
	}
	d.say("%s made on %s beside %s (revision %d), waiting for it to come up", c.Name, c.Node, final, j.req.Service.Revision)
	if err := d.comesUp(ctx, inv, c, j.req.Service.Healthcheck != nil, monitor); err != nil {
		d.dropSuccessor(ctx, inv, c)
		return c, err
	}
	return d.promote(ctx, inv, c, final)
}

// promote retires the replica an up successor replaces, then has the
// successor take its name and the service's names. Between the two only
// the service's other replicas answer to its name.
func (d *Deployer) promote(ctx context.Context, inv fleet.Inventory, c api.FleetContainer, final string) (api.FleetContainer, error) {
	if old, n, ok := inv.Find(final); ok {
		if err := n.Agent.Retire(ctx, old.Name); err != nil && !errdefs.IsNotFound(err) {
			d.dropSuccessor(ctx, inv, c)
			return c, fmt.Errorf("stopping %s on %s: %w", old.Name, n.Hostname, err)
		}
	}
	node := nodeOf(inv, c.Node)
	if node == nil {
		return c, fmt.Errorf("%s: its node %s does not answer", c.Name, c.Node)
	}
	got, err := node.Agent.Promote(ctx, c.Name, api.PromoteRequest{})
	if err != nil {
		return c, fmt.Errorf("%s taking the name %s: %w", c.Name, final, err)
	}
	d.say("%s replaced by its successor on %s (revision %d)", final, got.Node, got.Revision)
	return got, nil
}

// dropSuccessor removes a successor that will not take its replica's
// place; the replica runs on untouched.
func (d *Deployer) dropSuccessor(ctx context.Context, inv fleet.Inventory, c api.FleetContainer) {
	if node := nodeOf(inv, c.Node); node != nil {
		_ = node.Agent.Remove(context.WithoutCancel(ctx), c.Name)
	}
}

func successorName(replica string, revision int) string {
	return replica + "-r" + strconv.Itoa(revision)
}

// settleSuccessors finishes or drops the successors an interrupted
// start-first update left: one of the revision being rolled to whose
// replica is gone takes its name; any other is removed (its replica is
// replaced anew).
func (d *Deployer) settleSuccessors(ctx context.Context, inv fleet.Inventory, s spec.Service) error {
	for _, c := range inv.Containers(s.Name) {
		final := replicaName(s.Name, c.Replica)
		if c.Name == final {
			continue
		}
		if _, _, exists := inv.Find(final); !exists && c.Revision == s.Revision && c.State == "running" {
			if _, err := d.promote(ctx, inv, c, final); err != nil {
				return err
			}
			continue
		}
		d.dropSuccessor(ctx, inv, c)
	}
	return nil
}

// roomForSuccessor refuses a start-first update that cannot make a
// replica's successor beside it: a fixed host port the replica holds
// until it stops, or no node with the cores and memory of one more.
func roomForSuccessor(inv fleet.Inventory, s spec.Service) error {
	for _, p := range s.Ports {
		if p.Host != 0 {
			return errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf("update-order start-first: %s publishes host port %d/%s, which each replica holds until it stops: use stop-first", s.Name, p.Host, p.Protocol))
		}
	}
	if s.NetworkMode == spec.HostNetwork {
		return errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf("update-order start-first: %s runs on its nodes' network, where a successor would listen on the replica's ports: use stop-first", s.Name))
	}
	if _, err := scheduler.Place(schedulerNodes(inv), scheduler.RequestOf(s), 1); err != nil {
		return errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf("update-order start-first needs room for one more replica of %s beside the others: %v; use stop-first", s.Name, err))
	}
	return nil
}

// comesUp waits until a new replica is healthy (it has a healthcheck, its
// own or its image's) or has run for monitor without stopping.
func (d *Deployer) comesUp(ctx context.Context, inv fleet.Inventory, c api.FleetContainer, wantHealth bool, monitor time.Duration) error {
	node := nodeOf(inv, c.Node)
	if node == nil {
		return fmt.Errorf("%s: its node %s does not answer", c.Name, c.Node)
	}
	deadline := time.Now().Add(max(monitor, DefaultWaitTimeout))
	upSince := time.Now()
	for {
		det, err := node.Agent.Detail(ctx, c.Name)
		if err != nil {
			return fmt.Errorf("%s on %s: %w", c.Name, c.Node, err)
		}
		switch {
		case det.State != "running":
			return fmt.Errorf("%s on %s is %s%s instead of running", c.Name, c.Node, det.State, exitWords(det.FleetContainer))
		case det.StartedAt != c.StartedAt && c.StartedAt != "":
			return fmt.Errorf("%s on %s restarted after it started", c.Name, c.Node)
		case det.Health == "unhealthy":
			return fmt.Errorf("%s on %s is unhealthy", c.Name, c.Node)
		case det.Health == "healthy":
			return nil
		case det.Health == "" && !wantHealth && time.Since(upSince) >= monitor:
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s on %s did not come up within %s (health: %s)", c.Name, c.Node, time.Since(upSince).Round(time.Second), orNone(det.Health))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// nodeOf is a node of the update's reading of the fleet, where a replica
// was made (its agent client is all that is needed: the fleet is not
// read again for every replica).
func nodeOf(inv fleet.Inventory, name string) *fleet.NodeState {
	n := inv.ByName(name)
	if n == nil || n.Agent == nil {
		return nil
	}
	return n
}

func exitWords(c api.FleetContainer) string {
	if c.ExitCode != nil {
		return fmt.Sprintf(" (exit code %d)", *c.ExitCode)
	}
	return ""
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// describeUpdate says where an update stands, for messages.
func describeUpdate(u *swarmstore.Update) string {
	s := fmt.Sprintf("%s, revision %d to %d", u.State, u.From, u.To)
	if u.Reason != "" {
		s += ": " + u.Reason
	}
	return s
}

// refuseWhileUpdating refuses to change the replicas of a service whose
// update has not ended (scale, migrate).
func refuseWhileUpdating(ctx context.Context, d *Deployer, service, what string) error {
	st, err := swarmstore.LoadServiceState(ctx, d.Fleet.Manager, service)
	if err != nil || !st.Update.Running() {
		return nil
	}
	return errdefs.ErrConflict.WithMessage(fmt.Sprintf("cannot %s %s: %s (%s); finish it with docker fleet update %s or undo it with docker fleet update --rollback %s",
		what, service, swarmstore.ErrUpdateRunning, describeUpdate(st.Update), service, service))
}
