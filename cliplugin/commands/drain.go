package commands

import (
	"errors"
	"fmt"
	"io"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-fleet/fleet/cliplugin/internal/deploy"
	"github.com/docker-fleet/fleet/cliplugin/internal/dial"
	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/api"
)

type drainOptions struct {
	parallel int
	format   string
	quiet    bool
}

func newDrainCommand(dockerCli command.Cli) *cobra.Command {
	var opts drainOptions
	cmd := &cobra.Command{
		Use:   "drain [OPTIONS] NODE [NODE...]",
		Short: "Place nothing more on a node and move its containers off live",
		Long: `Sets the node's swarm availability to drain, as docker node update
--availability drain does: create, scale, migrate, rebalance and the
relocation of a dead node's containers place nothing there from then on.
Then it live-migrates every fleet container off it, each to the other node
with the fewest replicas of its service that has room (its cores, memory,
host ports and placement constraints), as rebalance carries out its moves.

The node stays in the fleet, drained, until docker fleet activate NODE.
Containers that cannot migrate (placed with --node, on their node's network,
or holding what CRIU cannot checkpoint) stay, and so does one whose move
fails: each is named, and the command exits 1. Run it again to move what is
left once it can go.`,
		Example: `  docker fleet drain h3
  docker fleet drain h3 --parallel 2
  docker fleet activate h3          # take work again`,
		Args: cli.RequiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDrain(cmd, dockerCli, opts, args)
		},
		ValidArgsFunction: completeNodes(dockerCli),
	}
	cmd.Flags().IntVar(&opts.parallel, "parallel", 1, "Moves at once, never two on one node")
	cmd.Flags().StringVar(&opts.format, "format", "", formatHelp)
	cmd.Flags().BoolVarP(&opts.quiet, "quiet", "q", false, "Show no progress, only the result (and errors)")
	return cmd
}

func runDrain(cmd *cobra.Command, dockerCli command.Cli, opts drainOptions, nodes []string) error {
	if opts.parallel < 1 {
		return fmt.Errorf("--parallel %d: at least 1", opts.parallel)
	}
	ctx, stop, d, err := migrateDeployer(cmd, dockerCli)
	if err != nil {
		return err
	}
	defer stop()
	migration, shown := progressView(dockerCli, d, opts.quiet)
	res, err := d.Drain(ctx, nodes, opts.parallel, func(name string, ev api.MigrateEvent) { migration(name)(ev) })
	shown()
	if res == nil {
		return err
	}
	werr := writeFormatted(dockerCli.Out(), opts.format, res, func(out io.Writer) error {
		return renderRebalanced(out, res, 0)
	})
	return errors.Join(err, werr)
}

type activateOptions struct {
	format string
}

func newActivateCommand(dockerCli command.Cli) *cobra.Command {
	var opts activateOptions
	cmd := &cobra.Command{
		Use:   "activate [OPTIONS] NODE [NODE...]",
		Short: "Let a drained node take containers again",
		Long: `Sets the node's swarm availability back to active, as docker node update
--availability active does: the scheduler places containers there again. It
moves nothing back by itself: docker fleet rebalance does.`,
		Example: `  docker fleet activate h3
  docker fleet activate h2 h3 && docker fleet rebalance`,
		Args: cli.RequiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runActivate(cmd, dockerCli, opts, args)
		},
		ValidArgsFunction: completeNodes(dockerCli),
	}
	cmd.Flags().StringVar(&opts.format, "format", "", formatHelp)
	return cmd
}

func runActivate(cmd *cobra.Command, dockerCli command.Cli, opts activateOptions, nodes []string) error {
	// Only the manager's engine is asked: no agent, no relay.
	f, err := fleet.Open(cmd.Context(), dockerCli.Client())
	if err != nil {
		return dial.EngineError(dockerCli.CurrentContext(), err)
	}
	d := &deploy.Deployer{Fleet: f, Progress: dockerCli.Err()}
	names, err := d.Activate(cmd.Context(), nodes)
	if err != nil {
		return err
	}
	return writeFormatted(dockerCli.Out(), opts.format, names, func(out io.Writer) error {
		for _, n := range names {
			fmt.Fprintf(out, "%s is active\n", n)
		}
		return nil
	})
}
