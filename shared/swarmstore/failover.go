package swarmstore

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
)

// DefaultFailoverAfter is how long a node may be silent before it is
// declared dead, unless init was told otherwise.
const DefaultFailoverAfter = 30 * time.Second

// FailoverAfter reads the fleet's grace period (0: relocation is off).
func FailoverAfter(ctx context.Context, c client.APIClient) (time.Duration, error) {
	l, err := caLabels(ctx, c)
	if err != nil {
		return 0, err
	}
	v, ok := l[labels.FailoverAfter]
	if !ok {
		return DefaultFailoverAfter, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q on %s: %w", labels.FailoverAfter, v, labels.CAConfigName, err)
	}
	return d, nil
}

// SetFailoverAfter records the fleet's grace period.
func SetFailoverAfter(ctx context.Context, c client.APIClient, d time.Duration) error {
	return UpdateLabels(ctx, c, labels.CAConfigName, func(l map[string]string) { l[labels.FailoverAfter] = d.String() })
}

// Guard says whether the fleet's engines are to consult their agents
// (init --guard).
func Guard(ctx context.Context, c client.APIClient) (bool, error) {
	l, err := caLabels(ctx, c)
	return l[labels.Guard] == "true", err
}

// caLabels are the labels of the CA config, where the fleet's settings
// live.
func caLabels(ctx context.Context, c client.APIClient) (map[string]string, error) {
	res, err := c.ConfigInspect(ctx, labels.CAConfigName, client.ConfigInspectOptions{})
	if errdefs.IsNotFound(err) {
		return nil, ErrNoFleet
	}
	if err != nil {
		return nil, err
	}
	return res.Config.Spec.Labels, nil
}

// SetGuard records whether the fleet's engines are to consult their agents.
func SetGuard(ctx context.Context, c client.APIClient, on bool) error {
	return UpdateLabels(ctx, c, labels.CAConfigName, func(l map[string]string) { l[labels.Guard] = strconv.FormatBool(on) })
}

// Down is a dead node's record: since when, and the containers it last
// reported. Known is false when the leader that declared it never heard
// from it (it took over after the node died): then the node's replicas are
// those claimed that run on no live node.
type Down struct {
	Node       string               `json:"node"`
	Since      time.Time            `json:"since"`
	Known      bool                 `json:"known"`
	Containers []api.FleetContainer `json:"containers"`
	// Removed says the leader removes the node (a worker) from the swarm,
	// which frees its containers' addresses for their relocated copies;
	// Addr and AgentPort are where its agent listens, to fence it and have
	// it join again when it is back. NodeID is its swarm ID before (a node that joins again gets
	// a new one).
	Removed   bool   `json:"removed,omitempty"`
	NodeID    string `json:"nodeId,omitempty"`
	Addr      string `json:"addr,omitempty"`
	AgentPort int    `json:"agentPort,omitempty"`
	// Labels and Availability are the removed node's, given back to it
	// when it joins again.
	Labels       map[string]string `json:"labels,omitempty"`
	Availability string            `json:"availability,omitempty"`
}

// RestoreNode gives a node that joined again the labels and availability
// it had (its agent's port among them).
func RestoreNode(ctx context.Context, c client.APIClient, nodeID string, d Down) error {
	res, err := c.NodeInspect(ctx, nodeID, client.NodeInspectOptions{})
	if err != nil {
		return err
	}
	spec := res.Node.Spec
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	for k, v := range d.Labels {
		spec.Labels[k] = v
	}
	spec.Labels[labels.AgentPort] = strconv.Itoa(d.AgentPort)
	if d.Availability != "" {
		spec.Availability = swarm.NodeAvailability(d.Availability)
	}
	_, err = c.NodeUpdate(ctx, nodeID, client.NodeUpdateOptions{Version: res.Node.Version, Spec: spec})
	return err
}

func downConfig(node string) string { return labels.DownConfigPrefix + node }

// MarkDown records node as dead, once: created is false when it already
// was (by this leader or an earlier one), and the record returned is the
// first one.
func MarkDown(ctx context.Context, c client.APIClient, d Down) (Down, bool, error) {
	data, err := json.Marshal(d)
	if err != nil {
		return Down{}, false, err
	}
	_, err = c.ConfigCreate(ctx, client.ConfigCreateOptions{Spec: swarm.ConfigSpec{
		Annotations: swarm.Annotations{Name: downConfig(d.Node), Labels: map[string]string{labels.Down: d.Node}},
		Data:        data,
	}})
	if err == nil {
		return d, true, nil
	}
	if !errdefs.IsConflict(err) {
		return Down{}, false, err
	}
	old, err := LoadDown(ctx, c, d.Node)
	return old, false, err
}

// LoadDown reads a dead node's record.
func LoadDown(ctx context.Context, c client.APIClient, node string) (Down, error) {
	var d Down
	res, err := c.ConfigInspect(ctx, downConfig(node), client.ConfigInspectOptions{})
	if err != nil {
		return d, err
	}
	return d, json.Unmarshal(res.Config.Spec.Data, &d)
}

// DownNodes lists the nodes recorded dead.
func DownNodes(ctx context.Context, c client.APIClient) ([]Down, error) {
	cfgs, err := inspectAll(ctx, c, labels.Down)
	if err != nil {
		return nil, err
	}
	var out []Down
	for _, cfg := range cfgs {
		var d Down
		if err := json.Unmarshal(cfg.Spec.Data, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.Spec.Name, err)
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}

// ForgetDeath forgets that node died, for good: its relocations count as
// fenced and it is no longer held dead. For a node that left the fleet:
// there is nothing left on it to fence.
func ForgetDeath(ctx context.Context, c client.APIClient, node string) error {
	rels, err := Relocations(ctx, c, node)
	if err != nil {
		return err
	}
	for _, r := range rels {
		if err := MarkFenced(ctx, c, r.Replica); err != nil {
			return err
		}
	}
	return ClearDown(ctx, c, node)
}

// ClearDown forgets a node's death (it is back and fenced).
func ClearDown(ctx context.Context, c client.APIClient, node string) error {
	return removeConfig(ctx, c, downConfig(node))
}

// Relocation is a replica made anew elsewhere because its node died.
type Relocation struct {
	Replica string    `json:"replica"`
	From    string    `json:"from"`
	To      string    `json:"to"`
	Kind    string    `json:"kind"` // "cold" or "warm"
	At      time.Time `json:"at"`
}

func relocationConfig(replica string) string { return labels.RelocationConfigPrefix + replica }

// staleRelocation is the age past which a relocation's record whose
// replica runs nowhere is taken to be left by a leader that died before
// it made the replica.
const staleRelocation = 2 * time.Minute

// ClaimRelocation records r before its replica is made anew; false if a
// record of a relocation of that replica is under way. running says
// whether the replica runs on a live node now: a record left without it
// for staleRelocation is taken over, and so is the record of a relocation
// whose old node was fenced (an earlier death).
func ClaimRelocation(ctx context.Context, c client.APIClient, r Relocation, running func(string) bool) (bool, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	for attempt := 0; attempt < 2; attempt++ {
		_, err = c.ConfigCreate(ctx, client.ConfigCreateOptions{Spec: swarm.ConfigSpec{
			Annotations: swarm.Annotations{Name: relocationConfig(r.Replica), Labels: map[string]string{labels.RelocatedFrom: r.From}},
			Data:        data,
		}})
		if err == nil {
			return true, nil
		}
		if !errdefs.IsConflict(err) {
			return false, err
		}
		res, ierr := c.ConfigInspect(ctx, relocationConfig(r.Replica), client.ConfigInspectOptions{})
		_, fenced := res.Config.Spec.Labels[labels.Fenced]
		if ierr != nil || !fenced && (running(r.Replica) || time.Since(res.Config.CreatedAt) < staleRelocation) {
			return false, nil
		}
		if _, err := c.ConfigRemove(ctx, res.Config.ID, client.ConfigRemoveOptions{}); err != nil && !errdefs.IsNotFound(err) {
			return false, err
		}
	}
	return false, nil
}

// MarkRelocated records that a relocation's replica was made on its target.
func MarkRelocated(ctx context.Context, c client.APIClient, r Relocation) error {
	return UpdateLabels(ctx, c, relocationConfig(r.Replica), func(l map[string]string) { l[labels.RelocatedTo] = r.To })
}

// RelocationRecord is a relocation as recorded: Done once its replica was
// made, FencedAt once its old node was back and removed its copy.
type RelocationRecord struct {
	Relocation
	Done     bool
	FencedAt time.Time
}

// LoadRelocation reads a replica's relocation record.
func LoadRelocation(ctx context.Context, c client.APIClient, replica string) (RelocationRecord, error) {
	var r RelocationRecord
	res, err := c.ConfigInspect(ctx, relocationConfig(replica), client.ConfigInspectOptions{})
	if err != nil {
		return r, err
	}
	l := res.Config.Spec.Labels
	_, r.Done = l[labels.RelocatedTo]
	if v, ok := l[labels.Fenced]; ok {
		r.FencedAt, _ = time.Parse(time.RFC3339Nano, v)
	}
	return r, json.Unmarshal(res.Config.Spec.Data, &r.Relocation)
}

// MarkFenced records that a relocation's old node is back and removed its
// copy, and when.
func MarkFenced(ctx context.Context, c client.APIClient, replica string) error {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	return UpdateLabels(ctx, c, relocationConfig(replica), func(l map[string]string) { l[labels.Fenced] = now })
}

// Relocations lists the replicas relocated away from node whose copies
// there are not fenced yet.
func Relocations(ctx context.Context, c client.APIClient, from string) ([]Relocation, error) {
	cfgs, err := inspectAll(ctx, c, labels.RelocatedFrom+"="+from)
	if err != nil {
		return nil, err
	}
	var out []Relocation
	for _, cfg := range cfgs {
		if _, fenced := cfg.Spec.Labels[labels.Fenced]; fenced {
			continue
		}
		var r Relocation
		if err := json.Unmarshal(cfg.Spec.Data, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.Spec.Name, err)
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Replica < out[j].Replica })
	return out, nil
}

// DropRelocation removes a relocation's record: its replica could not be
// made, so it may be tried again.
func DropRelocation(ctx context.Context, c client.APIClient, replica string) error {
	return removeConfig(ctx, c, relocationConfig(replica))
}

// Stats are the fleet's failover counters.
type Stats struct {
	Failures        int `json:"failures"`
	RelocationsCold int `json:"relocationsCold"`
	RelocationsWarm int `json:"relocationsWarm"`
}

// Counter names of Stats, as stored.
const (
	CountFailures        = "failures"
	CountRelocationsCold = "relocations-cold"
	CountRelocationsWarm = "relocations-warm"
)

// Count adds one to a counter of the fleet's Stats.
func Count(ctx context.Context, c client.APIClient, counter string) error {
	_, err := c.ConfigCreate(ctx, client.ConfigCreateOptions{Spec: swarm.ConfigSpec{
		Annotations: swarm.Annotations{Name: labels.StatsConfigName, Labels: map[string]string{labels.Stats: "1"}},
		Data:        []byte("{}"),
	}})
	if err != nil && !errdefs.IsConflict(err) {
		return err
	}
	return UpdateLabels(ctx, c, labels.StatsConfigName, func(l map[string]string) {
		n, _ := strconv.Atoi(l[counter])
		l[counter] = strconv.Itoa(n + 1)
	})
}

// ReadStats reads the fleet's failover counters (zero before any).
func ReadStats(ctx context.Context, c client.APIClient) (Stats, error) {
	res, err := c.ConfigInspect(ctx, labels.StatsConfigName, client.ConfigInspectOptions{})
	if errdefs.IsNotFound(err) {
		return Stats{}, nil
	}
	if err != nil {
		return Stats{}, err
	}
	l := res.Config.Spec.Labels
	n := func(k string) int { v, _ := strconv.Atoi(l[k]); return v }
	return Stats{Failures: n(CountFailures), RelocationsCold: n(CountRelocationsCold), RelocationsWarm: n(CountRelocationsWarm)}, nil
}

func removeConfig(ctx context.Context, c client.APIClient, name string) error {
	_, err := c.ConfigRemove(ctx, name, client.ConfigRemoveOptions{})
	if err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}
