package commands

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-fleet/fleet/cliplugin/internal/deploy"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
)

type rebalanceOptions struct {
	strategy string
	dryRun   bool
	maxMoves int
	parallel int
	format   string
	quiet    bool
}

func newRebalanceCommand(dockerCli command.Cli) *cobra.Command {
	var opts rebalanceOptions
	cmd := &cobra.Command{
		Use:   "rebalance [OPTIONS] [SERVICE...]",
		Short: "Move containers live to even out the fleet, or to empty nodes",
		Long: `Plans the moves that bring the fleet (or the services named) to the strategy's
goal, then carries them out as live migrations, as migrate does, with progress.

  spread   evens out each service by its count of replicas: the busiest and the
           idlest node it may run on end up at most one replica apart, where
           room allows. The default.
  binpack  empties nodes, the least loaded first, into the most loaded that
           have room, a node's containers all or none (before leave, to save
           power).

A move goes only where the container's exclusive cores, memory, host ports
and placement constraints fit, once the moves before it are done, and never
to a drained node. Containers that cannot migrate are left out of the plan,
with the reason: a service placed with --node, one on its node's network
(network_mode: host), one whose update has not ended, one that is not
running, and one its agent finds CRIU cannot checkpoint (as migrate --check).

--dry-run prints the plan (each move: container, from, to, why) and changes
nothing. Moves between disjoint pairs of nodes may run at once (--parallel);
a move that fails leaves its container where it was, is reported, and the
others go on (exit 1 then). Right after a rebalance, another has nothing to
do.`,
		Example: `  docker fleet rebalance --dry-run          # the plan; nothing moves
  docker fleet rebalance                    # even out every service
  docker fleet rebalance web api --parallel 2
  docker fleet rebalance --strategy binpack --max-moves 10
  docker fleet rebalance --dry-run --format '{{range .Moves}}{{.Container}} {{.From}}>{{.To}} {{end}}'`,
		ValidArgsFunction: completeServices(dockerCli),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRebalance(cmd, dockerCli, opts, args)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&opts.strategy, "strategy", spec.Spread, `"spread" (even out each service) or "binpack" (empty nodes)`)
	flags.BoolVar(&opts.dryRun, "dry-run", false, "Print the plan and change nothing")
	flags.IntVar(&opts.maxMoves, "max-moves", 0, "Plan at most this many moves (0: no limit)")
	flags.IntVar(&opts.parallel, "parallel", 1, "Moves at once, never two on one node")
	flags.StringVar(&opts.format, "format", "", formatHelp)
	flags.BoolVarP(&opts.quiet, "quiet", "q", false, "Show no progress, only the result (and errors)")
	_ = cmd.RegisterFlagCompletionFunc("strategy", cobra.FixedCompletions([]string{spec.Spread, spec.Binpack}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runRebalance(cmd *cobra.Command, dockerCli command.Cli, opts rebalanceOptions, services []string) error {
	if opts.parallel < 1 {
		return fmt.Errorf("--parallel %d: at least 1", opts.parallel)
	}
	if opts.maxMoves < 0 {
		return fmt.Errorf("--max-moves %d: 0 (no limit) or more", opts.maxMoves)
	}
	ctx, stop, d, err := migrateDeployer(cmd, dockerCli)
	if err != nil {
		return err
	}
	defer stop()
	migration, shown := progressView(dockerCli, d, opts.quiet)
	res, err := d.Rebalance(ctx, deploy.RebalanceOptions{Services: services, Strategy: opts.strategy, DryRun: opts.dryRun,
		MaxMoves: opts.maxMoves, Parallel: opts.parallel}, func(name string, ev api.MigrateEvent) { migration(name)(ev) })
	shown()
	if res == nil {
		return err
	}
	werr := writeFormatted(dockerCli.Out(), opts.format, res, func(out io.Writer) error {
		return renderRebalanced(out, res, opts.maxMoves)
	})
	return errors.Join(err, werr)
}

// renderRebalanced is the plan, and how each move ended unless a dry run.
func renderRebalanced(out io.Writer, r *deploy.Rebalanced, maxMoves int) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	switch {
	case len(r.Moves) == 0 && len(r.Drained) > 0:
		fmt.Fprintf(w, "nothing to move off %s\n", strings.Join(r.Drained, ", "))
	case len(r.Moves) == 0 && r.Strategy == spec.Binpack:
		fmt.Fprintln(w, "nothing to move: no node can be emptied into the others")
	case len(r.Moves) == 0:
		fmt.Fprintln(w, "nothing to move: every service is spread, no two nodes more than one replica apart")
	case len(r.Results) == 0:
		fmt.Fprintln(w, "CONTAINER\tFROM\tTO\tWHY")
		for _, m := range r.Moves {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", m.Container, m.From, m.To, m.Why)
		}
	default:
		fmt.Fprintln(w, "CONTAINER\tFROM\tTO\tRESULT\tWHY")
		for _, m := range r.Results {
			result := "failed (stays on " + m.From + ")"
			switch {
			case m.Error == "" && m.Migration != nil:
				result = fmt.Sprintf("moved, downtime %.2fs", m.Migration.Downtime)
			case strings.HasPrefix(m.Error, "not started"):
				result = "not started"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", m.Container, m.From, m.To, result, m.Why)
		}
	}
	if len(r.LeftOut) > 0 {
		fmt.Fprintln(w, "\nLEFT OUT\tNODE\tWHY")
		for _, l := range r.LeftOut {
			fmt.Fprintf(w, "%s\t%s\t%s\n", l.Container, l.Node, l.Why)
		}
	}
	if len(r.Shortfalls) > 0 {
		fmt.Fprintln(w, "\nSHORT OF THE GOAL\tWHY")
		for _, s := range r.Shortfalls {
			fmt.Fprintf(w, "%s\t%s\n", s.Of, s.Why)
		}
	}
	if r.Capped {
		fmt.Fprintf(w, "\n(stopped at --max-moves %d: run rebalance again for the next moves)\n", maxMoves)
	}
	if r.DryRun && len(r.Moves) > 0 {
		fmt.Fprintln(w, "\n(dry run: nothing was moved)")
	}
	return w.Flush()
}
