package describe

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// PSFilterKeys are the keys docker fleet ps --filter takes.
var PSFilterKeys = []string{"node", "project", "service", "state"}

// ContainerStates are the states an engine gives a container.
var ContainerStates = []string{"created", "running", "paused", "restarting", "removing", "exited", "dead"}

// PSFilter is ps's --filter, as docker's: per key the values a container
// must match one of (node=h1 --filter node=h2: either); every key given
// must match (node=h1 and state=running: both).
type PSFilter map[string][]string

// ParsePSFilter reads --filter KEY=VALUE flags.
func ParsePSFilter(args []string) (PSFilter, error) {
	keys := strings.Join(PSFilterKeys, ", ")
	f := PSFilter{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		switch {
		case !ok || k == "":
			return nil, fmt.Errorf("--filter %q: use KEY=VALUE (keys: %s)", a, keys)
		case !slices.Contains(PSFilterKeys, k):
			return nil, fmt.Errorf("--filter %q: unknown key %q (valid keys: %s)", a, k, keys)
		case v == "":
			return nil, fmt.Errorf("--filter %q: no value for %s", a, k)
		case k == "state" && !slices.Contains(ContainerStates, v):
			return nil, fmt.Errorf("--filter %q: unknown state %q (states: %s)", a, v, strings.Join(ContainerStates, ", "))
		}
		if !slices.Contains(f[k], v) {
			f[k] = append(f[k], v)
		}
	}
	return f, nil
}

// PSOptions is what docker fleet ps lists: the containers of Services
// (all when empty) that pass Filter.
type PSOptions struct {
	Services []string
	Filter   PSFilter
}

// PSRow is one fleet container as docker fleet ps shows it; --format
// templates see these fields ({{.Name}}, {{.Uptime}}, …).
type PSRow struct {
	Name    string `json:"name"`
	Service string `json:"service"`
	Replica int    `json:"replica"`
	Project string `json:"project,omitempty"`
	Node    string `json:"node"`
	Image   string `json:"image"`
	// State is the engine's (running, exited, …); Health its healthcheck's
	// status, empty without one.
	State  string `json:"state"`
	Health string `json:"health,omitempty"`
	Cpuset string `json:"cpuset,omitempty"`
	Memory int64  `json:"memory,omitempty"`
	IP     string `json:"ip,omitempty"`
	// StartedAt is when it last started; Uptime how long ago, as docker ps
	// says it ("3 minutes"), empty when it does not run.
	StartedAt string `json:"startedAt,omitempty"`
	Uptime    string `json:"uptime,omitempty"`
	// Migrations counts its recorded migrations; LastMigration is the
	// newest (zero, and left out of JSON, when it never moved).
	Migrations    int  `json:"migrations"`
	LastMigration Move `json:"lastMigration,omitzero"`
}

// Move is a migration as ps shows it.
type Move struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Time is when it ended (RFC 3339); Ago how long before the listing
	// ("4 minutes ago").
	Time     string  `json:"time"`
	Ago      string  `json:"ago,omitempty"`
	Downtime float64 `json:"downtimeSeconds"`
}

// String is "h1 → h2, 4 minutes ago", or "-" for no migration.
func (m Move) String() string {
	if m.From == "" && m.To == "" {
		return "-"
	}
	s := m.From + " → " + m.To
	if m.Ago != "" {
		s += ", " + m.Ago
	}
	return s
}

// NodeError is a node whose agent did not answer.
type NodeError struct {
	Node string `json:"node"`
	Err  string `json:"error"`
}

// PSView is what ps lists, and the nodes it could not ask (whose
// containers are missing from Rows).
type PSView struct {
	Rows        []PSRow
	Unreachable []NodeError
}

// psTimeout bounds how long ps waits for the agents: one that has not
// answered by then is reported, the others listed.
const psTimeout = 10 * time.Second

// PS gathers docker fleet ps's rows: every node's ledger (all agents at
// once), the stored services (for their projects) and the migration
// histories (one listing), all at the same time.
func PS(ctx context.Context, f *fleet.Fleet, opts PSOptions) (*PSView, error) {
	var (
		inv                 fleet.Inventory
		svcs                []spec.Service
		hist                map[string][]api.Migration
		ierr, serr, herr    error
		wg                  sync.WaitGroup
		agentCtx, cancelAll = context.WithTimeout(ctx, psTimeout)
	)
	defer cancelAll()
	wg.Go(func() { inv, ierr = f.Inventory(agentCtx) })
	wg.Go(func() { svcs, serr = swarmstore.ListServices(ctx, f.Manager) })
	wg.Go(func() { hist, herr = f.Histories(ctx) })
	wg.Wait()
	if err := firstErr(ierr, serr, herr); err != nil {
		return nil, err
	}
	return ListPS(inv, svcs, hist, opts, time.Now())
}

// ListPS picks, sorts and describes the inventory's containers as ps
// lists them (by service, then replica), at now.
func ListPS(inv fleet.Inventory, svcs []spec.Service, hist map[string][]api.Migration, opts PSOptions, now time.Time) (*PSView, error) {
	project := map[string]string{}
	for _, s := range svcs {
		project[s.Name] = s.Project
	}
	// A service named as an argument must be there, as docker service ps
	// wants it: stored, or with containers.
	for _, name := range opts.Services {
		if _, ok := project[name]; !ok && len(inv.Containers(name)) == 0 {
			return nil, fmt.Errorf("no service named %q in the fleet", name)
		}
	}
	// Nodes are named as everywhere else: hostname or ID prefix.
	var nodes []string
	for _, name := range opts.Filter["node"] {
		n, err := swarmstore.FindNode(inv.Nodes(), name)
		if err != nil {
			return nil, fmt.Errorf("--filter node=%s: %w", name, err)
		}
		nodes = append(nodes, n.Hostname)
	}
	anyOf := func(want []string, v string) bool { return len(want) == 0 || slices.Contains(want, v) }

	v := &PSView{Rows: []PSRow{}}
	for _, n := range inv {
		if !anyOf(nodes, n.Hostname) {
			continue
		}
		if n.Err != nil {
			v.Unreachable = append(v.Unreachable, NodeError{Node: n.Hostname, Err: n.Err.Error()})
			continue
		}
		for _, c := range n.Ledger.Containers {
			if !anyOf(opts.Services, c.Service) || !anyOf(opts.Filter["service"], c.Service) ||
				!anyOf(opts.Filter["state"], c.State) || !anyOf(opts.Filter["project"], project[c.Service]) {
				continue
			}
			node := c.Node
			if node == "" {
				node = n.Hostname
			}
			r := PSRow{
				Name: c.Name, Service: c.Service, Replica: c.Replica, Project: project[c.Service],
				Node: node, Image: c.Image, State: c.State, Health: c.Health,
				Cpuset: c.Cpuset, Memory: c.Memory, IP: c.IP, StartedAt: c.StartedAt,
				Uptime: uptime(c, now),
			}
			if h := hist[c.Name]; len(h) > 0 {
				r.Migrations = len(h)
				r.LastMigration = moveOf(h[len(h)-1], now)
			}
			v.Rows = append(v.Rows, r)
		}
	}
	sort.SliceStable(v.Rows, func(i, j int) bool {
		a, b := v.Rows[i], v.Rows[j]
		switch {
		case a.Service != b.Service:
			return a.Service < b.Service
		case a.Replica != b.Replica:
			return a.Replica < b.Replica
		case a.Name != b.Name:
			return a.Name < b.Name
		}
		return a.Node < b.Node
	})
	return v, nil
}

// uptime is how long a running (or paused) container has run, as docker ps
// says it; "" otherwise.
func uptime(c api.FleetContainer, now time.Time) string {
	if c.State != "running" && c.State != "paused" {
		return ""
	}
	at, err := time.Parse(time.RFC3339Nano, c.StartedAt)
	if err != nil || at.IsZero() || at.Year() < 2000 {
		return ""
	}
	return units.HumanDuration(max(now.Sub(at), 0))
}

func moveOf(m api.Migration, now time.Time) Move {
	mv := Move{From: m.From, To: m.To, Time: m.Time, Downtime: m.Downtime}
	if at, err := time.Parse(time.RFC3339Nano, m.Time); err == nil {
		mv.Ago = units.HumanDuration(max(now.Sub(at), 0)) + " ago"
	}
	return mv
}

// RenderPS writes ps's table.
func RenderPS(out io.Writer, rows []PSRow) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tNODE\tSTATE\tCPUSET\tMEMORY\tIP\tUPTIME\tLAST MIGRATION")
	for _, r := range rows {
		state := r.State
		if r.Health != "" {
			state += " (" + r.Health + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.Name, r.Node, state, orDash(r.Cpuset), bytesOrDash(r.Memory), orDash(r.IP), orDash(r.Uptime), r.LastMigration)
	}
	return w.Flush()
}
