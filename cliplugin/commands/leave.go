package commands

import (
	"fmt"
	"io"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-fleet/fleet/cliplugin/internal/deploy"
	"github.com/docker-fleet/fleet/shared/api"
)

type leaveOptions struct {
	force  bool
	format string
	quiet  bool
}

func newLeaveCommand(dockerCli command.Cli) *cobra.Command {
	var opts leaveOptions
	cmd := &cobra.Command{
		Use:   "leave [OPTIONS] NODE",
		Short: "Drain a node by live migration and take it out of the fleet",
		Long: `Live-migrates every fleet container off NODE (the scheduler picks where each
goes), then the node leaves the swarm, the manager forgets it, and its agent is
removed from its engine. If a migration fails, the node stays in the fleet with
the containers that could not move, unless --force.

Progress goes to stderr: on a terminal a line a container, updated in place
with its phase and its transfer's bar; otherwise plain lines. -q shows none,
only the result.`,
		Example: `  docker fleet leave h3`,
		Args:    cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLeave(cmd, dockerCli, opts, args[0])
		},
		ValidArgsFunction: upTo(1, completeNodes(dockerCli)),
	}
	cmd.Flags().BoolVar(&opts.force, "force", false, "Leave even if some containers could not be migrated")
	cmd.Flags().StringVar(&opts.format, "format", "", formatHelp)
	cmd.Flags().BoolVarP(&opts.quiet, "quiet", "q", false, "Show no progress, only the result (and errors)")
	return cmd
}

func runLeave(cmd *cobra.Command, dockerCli command.Cli, opts leaveOptions, node string) error {
	ctx := cmd.Context()
	f, err := openFleet(cmd, dockerCli)
	if err != nil {
		return err
	}
	d := &deploy.Deployer{Fleet: f, Progress: dockerCli.Err()}
	migration, shown := progressView(dockerCli, d, opts.quiet)
	res, err := d.Leave(ctx, node, opts.force, func(name string, ev api.MigrateEvent) {
		migration(name)(ev)
	})
	shown()
	if err != nil {
		return err
	}
	return writeFormatted(dockerCli.Out(), opts.format, res, func(out io.Writer) error {
		for i := range res.Migrated {
			fmt.Fprintln(out, summary(&res.Migrated[i]))
		}
		for name, why := range res.Failed {
			fmt.Fprintf(out, "left behind %s: %s\n", name, why)
		}
		_, err := fmt.Fprintf(out, "%s left the fleet\n", res.Node)
		return err
	})
}
