package commands

import (
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-fleet/fleet/cliplugin/internal/bootstrap"
	"github.com/docker-fleet/fleet/cliplugin/internal/describe"
	"github.com/docker-fleet/fleet/cliplugin/internal/engines"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

type initOptions struct {
	network       string
	subnet        string
	advertiseAddr string
	workers       []string
	agentPort     int
	failoverAfter time.Duration
	format        string
	// failoverSet: --failover-after was given (else the fleet keeps its own).
	failoverSet bool
	// guard, when guardSet, is --guard: every node's engine consults its
	// agent as an authorization plugin (or no longer does).
	guard, guardSet bool
	// rebalanceEvery and rebalanceMaxMoves, when set, are the automatic
	// rebalance's.
	rebalanceEvery                       time.Duration
	rebalanceMaxMoves                    int
	rebalanceEverySet, rebalanceMovesSet bool
	allowDowngrade                       bool
	// engineSockets are --engine-socket CONTEXT=PATH.
	engineSockets []string
}

// minFailoverAfter is the shortest grace period init accepts: the swarm
// itself takes several seconds to call a node down.
const minFailoverAfter = 5 * time.Second

// minRebalanceEvery is the shortest interval of the automatic rebalance
// init accepts: each look asks every agent, and moves need time to settle.
const minRebalanceEvery = 10 * time.Second

// networkName is what the engine accepts as a network name.
var networkName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func newInitCommand(dockerCli command.Cli) *cobra.Command {
	var opts initOptions
	cmd := &cobra.Command{
		Use:   "init [OPTIONS]",
		Short: "Make the current engine a fleet manager and add workers",
		Long: `Makes the current engine a swarm manager (or reuses its swarm), creates the
attachable overlay network and the fleet CA, installs the agent plugin on the
manager and on every --worker engine (named by docker context) and joins those
to the swarm. Running it again changes nothing; with new --worker flags it adds
those nodes. It ends with each node's readiness for live migration.`,
		Example: `  docker fleet init
  docker --context h1 fleet init --worker h2 --worker h3 --subnet 10.215.0.0/24
  docker fleet init --worker h4           # add a node later
  docker fleet init --failover-after 1m   # relocate a lost node's containers after a minute
  docker fleet init --guard               # engines refuse what would break the fleet's promises
  docker fleet init --guard=false         # and no longer do (their configuration as it was)
  docker fleet init --rebalance-every 5m  # the fleet evens itself out, a few live migrations at a time
  docker fleet init                       # again, from a newer docker-fleet: upgrades every agent`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.failoverSet = cmd.Flags().Changed("failover-after")
			opts.guardSet = cmd.Flags().Changed("guard")
			opts.rebalanceEverySet = cmd.Flags().Changed("rebalance-every")
			opts.rebalanceMovesSet = cmd.Flags().Changed("rebalance-max-moves")
			return runInit(cmd, dockerCli, opts)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&opts.network, "network", "fleet", "Name of the fleet's overlay network")
	flags.StringVar(&opts.subnet, "subnet", "", "Subnet of the overlay network in CIDR form (default: the swarm chooses)")
	flags.StringVar(&opts.advertiseAddr, "advertise-addr", "", "Address the new swarm manager advertises (default: the engine chooses)")
	flags.StringArrayVar(&opts.workers, "worker", nil, "Docker context of an engine to add as a worker (repeatable)")
	flags.IntVar(&opts.agentPort, "agent-port", api.DefaultPort, "TCP port of the agents' mutual-TLS API")
	flags.DurationVar(&opts.failoverAfter, "failover-after", swarmstore.DefaultFailoverAfter,
		"How long a node may be lost before its containers are made anew on the others (0 turns relocation off; unset keeps the fleet's)")
	flags.StringArrayVar(&opts.engineSockets, "engine-socket", nil,
		"CONTEXT=PATH: where the engine of docker context CONTEXT has its API socket on its own host, when init cannot find it (repeatable)")
	flags.BoolVar(&opts.guard, "guard", false,
		"Have every node's engine refuse what would break the fleet's promises (another container on exclusive cores, a fleet container changed or removed behind it); --guard=false undoes it (unset keeps the fleet's)")
	flags.DurationVar(&opts.rebalanceEvery, "rebalance-every", 0,
		"How often the swarm leader's agent rebalances the fleet live (spread, as docker fleet rebalance does); 0 turns it off (unset keeps the fleet's)")
	flags.IntVar(&opts.rebalanceMaxMoves, "rebalance-max-moves", swarmstore.DefaultRebalanceMaxMoves,
		"How many live migrations each automatic rebalance makes at most (unset keeps the fleet's)")
	flags.BoolVar(&opts.allowDowngrade, "allow-downgrade", false, "Replace agents that speak a newer API than this docker-fleet with its own")
	flags.StringVar(&opts.format, "format", "", formatHelp)
	return cmd
}

func runInit(cmd *cobra.Command, dockerCli command.Cli, opts initOptions) error {
	bopts, err := opts.validate()
	if err != nil {
		return err
	}
	if bopts.Dial, err = agentDialer(cmd, dockerCli); err != nil {
		return err
	}
	ctx := cmd.Context()
	manager := &engines.Engine{Context: dockerCli.CurrentContext(), Host: dockerCli.DockerEndpoint().Host, Client: dockerCli.Client()}
	var workers []*engines.Engine
	seen := map[string]bool{}
	for _, name := range opts.workers {
		if seen[name] {
			continue
		}
		seen[name] = true
		w, err := engines.FromContext(dockerCli.ContextStore(), name)
		if err != nil {
			return fmt.Errorf("--worker %s: %w", name, err)
		}
		workers = append(workers, w)
	}
	if err := nameSockets(opts.engineSockets, append([]*engines.Engine{manager}, workers...)); err != nil {
		return err
	}
	report, err := bootstrap.Init(ctx, manager, workers, bopts, dockerCli.Err())
	if err != nil {
		return err
	}
	return writeFormatted(dockerCli.Out(), opts.format, report, func(out io.Writer) error {
		return renderInit(out, report)
	})
}

func (opts initOptions) validate() (bootstrap.Options, error) {
	b := bootstrap.Options{Network: opts.network, AdvertiseAddr: opts.advertiseAddr, AgentPort: opts.agentPort, AllowDowngrade: opts.allowDowngrade}
	if !networkName.MatchString(opts.network) {
		return b, fmt.Errorf("--network %q: not a valid network name", opts.network)
	}
	if opts.subnet != "" {
		p, err := netip.ParsePrefix(opts.subnet)
		if err != nil || !p.Addr().Is4() {
			return b, fmt.Errorf("--subnet %q: not an IPv4 CIDR such as 10.215.0.0/24", opts.subnet)
		}
		if p.Masked() != p {
			return b, fmt.Errorf("--subnet %q: host bits set; did you mean %s?", opts.subnet, p.Masked())
		}
		if p.Bits() > 29 {
			return b, fmt.Errorf("--subnet %q: too small for a fleet (at most /29)", opts.subnet)
		}
		b.Subnet = p
	}
	if opts.agentPort < 1 || opts.agentPort > 65535 {
		return b, fmt.Errorf("--agent-port %d: not a TCP port", opts.agentPort)
	}
	if opts.failoverSet {
		if opts.failoverAfter < 0 || opts.failoverAfter > 0 && opts.failoverAfter < minFailoverAfter {
			return b, fmt.Errorf("--failover-after %s: 0 (off) or at least %s: shorter, a node busy for a moment would lose its containers", opts.failoverAfter, minFailoverAfter)
		}
		b.FailoverAfter = &opts.failoverAfter
	}
	if opts.guardSet {
		b.Guard = &opts.guard
	}
	if opts.rebalanceEverySet {
		if opts.rebalanceEvery < 0 || opts.rebalanceEvery > 0 && opts.rebalanceEvery < minRebalanceEvery {
			return b, fmt.Errorf("--rebalance-every %s: 0 (off) or at least %s: shorter, the fleet would be moving containers all the time", opts.rebalanceEvery, minRebalanceEvery)
		}
		b.RebalanceEvery = &opts.rebalanceEvery
	}
	if opts.rebalanceMovesSet {
		if opts.rebalanceMaxMoves < 1 {
			return b, fmt.Errorf("--rebalance-max-moves %d: at least 1 (--rebalance-every 0 turns the automatic rebalance off)", opts.rebalanceMaxMoves)
		}
		b.RebalanceMaxMoves = &opts.rebalanceMaxMoves
	}
	return b, nil
}

func renderInit(out io.Writer, r *bootstrap.Report) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tROLE\tADDRESS\tAGENT\tENGINE\tEXPERIMENTAL\tCRIU\tMIGRATION")
	for _, n := range r.Nodes {
		engine, exp, criu := "-", "-", "-"
		if i := n.Info; i != nil {
			engine = i.Engine.Version
			exp = fmt.Sprint(i.Engine.Experimental)
			criu = i.CRIU.Version
			if criu == "" {
				criu = "none"
			}
		}
		agent := "unreachable"
		if n.Info != nil {
			agent = fmt.Sprintf(":%d", n.AgentPort)
		}
		ready := "no"
		if n.Info != nil && n.Info.Migration.Ready {
			ready = "ready"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Hostname, n.Role, n.Addr, agent, engine, exp, criu, ready)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	problems := r.Problems()
	ready := 0
	for _, n := range r.Nodes {
		if describe.Migration(n.Info, n.Error) == "ready" {
			ready++
		}
	}
	fmt.Fprintf(out, "\nfleet ready: %d nodes (%d ready to migrate), network %s (%s)\n", len(r.Nodes), ready, r.Network.Name, r.Network.Subnet)
	if r.FailoverAfter > 0 {
		fmt.Fprintf(out, "failover: a node lost for %s has its containers made anew on the others\n", r.FailoverAfter)
	} else {
		fmt.Fprintln(out, "failover: off (a lost node's containers stay lost until it is back)")
	}
	if r.Rebalance.Every > 0 {
		fmt.Fprintf(out, "rebalance: every %s, at most %d live migration(s) each time (--rebalance-every 0 turns it off)\n", r.Rebalance.Every, r.Rebalance.MaxMoves)
	}
	if r.Guard {
		fmt.Fprintln(out, "guard: on (each engine refuses what would break the fleet's promises; --guard=false takes it off)")
	}
	if len(problems) > 0 {
		fmt.Fprintf(out, "Live migration will not work until this is fixed:\n  %s\n", strings.Join(problems, "\n  "))
	}
	if limits := r.Limits(); len(limits) > 0 {
		fmt.Fprintf(out, "Live migration works with these limits:\n  %s\n", strings.Join(limits, "\n  "))
	}
	return nil
}

// nameSockets applies --engine-socket CONTEXT=PATH to the engines of init.
func nameSockets(flags []string, es []*engines.Engine) error {
	for _, f := range flags {
		name, path, ok := strings.Cut(f, "=")
		if !ok || name == "" || !filepath.IsAbs(path) || filepath.Clean(path) != path {
			return fmt.Errorf("--engine-socket %q: want CONTEXT=PATH, PATH absolute (like h2=/run/docker.sock)", f)
		}
		i := slices.IndexFunc(es, func(e *engines.Engine) bool { return e.Context == name })
		if i < 0 {
			return fmt.Errorf("--engine-socket %q: docker context %q is neither the manager's nor a --worker", f, name)
		}
		es[i].SetSocket(path)
	}
	return nil
}
