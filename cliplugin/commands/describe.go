package commands

import (
	"io"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-fleet/fleet/cliplugin/internal/describe"
	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
)

type describeOptions struct {
	target string
	format string
}

func newDescribeCommand(dockerCli command.Cli) *cobra.Command {
	var opts describeOptions
	cmd := &cobra.Command{
		Use:   "describe [OPTIONS] [NODE]",
		Short: "Show the fleet, or one node",
		Long: `Without an argument: the fleet (manager, network, nodes with CPU, memory,
containers and migration readiness, services, totals). With a node (hostname
or ID prefix): its per-core usage and core ledger, memory, network traffic per
interface, containers and engine, CRIU and agent versions.`,
		Example: `  docker fleet describe
  docker fleet describe h2
  docker fleet describe --format json
  docker fleet describe h2 --format '{{.Info.CRIU.Version}}'`,
		Args: cli.RequiresMaxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.target = args[0]
			}
			return runDescribe(cmd, dockerCli, opts)
		},
	}
	cmd.Flags().StringVar(&opts.format, "format", "", formatHelp)
	return cmd
}

func runDescribe(cmd *cobra.Command, dockerCli command.Cli, opts describeOptions) error {
	ctx := cmd.Context()
	f, err := fleet.Open(ctx, dockerCli.Client())
	if err != nil {
		return err
	}
	if opts.target == "" {
		v, err := describe.Fleet(ctx, f)
		if err != nil {
			return err
		}
		return writeFormatted(dockerCli.Out(), opts.format, v, func(out io.Writer) error { return describe.RenderFleet(out, v) })
	}
	nodes, err := fleet.Nodes(ctx, f.Manager)
	if err != nil {
		return err
	}
	n, err := fleet.FindNode(nodes, opts.target)
	if err != nil {
		return err
	}
	v := describe.Node(ctx, f, n)
	return writeFormatted(dockerCli.Out(), opts.format, v, func(out io.Writer) error { return describe.RenderNode(out, v) })
}
