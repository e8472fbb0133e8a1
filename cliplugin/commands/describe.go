package commands

import (
	"errors"
	"fmt"
	"io"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-fleet/fleet/cliplugin/internal/describe"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

type describeOptions struct {
	target string
	format string
}

func newDescribeCommand(dockerCli command.Cli) *cobra.Command {
	var opts describeOptions
	cmd := &cobra.Command{
		Use:   "describe [OPTIONS] [NODE|SERVICE|CONTAINER]",
		Short: "Show the fleet, or one node, service or container",
		Long: `Without an argument: the fleet (manager, network, nodes with CPU, memory,
containers and migration readiness, services, totals). With a node (hostname
or ID prefix): its per-core usage and core ledger, memory, network traffic per
interface, containers and engine, CRIU and agent versions. With a service: its
desired and running replicas per node. With a container: its node, state,
cpuset, memory use and limit, CPU %, network traffic and IP.`,
		Example: `  docker fleet describe
  docker fleet describe h2
  docker fleet describe web
  docker fleet describe web.1
  docker fleet describe --format json
  docker fleet describe h2 --format '{{.Info.CRIU.Version}}'`,
		Args:              cli.RequiresMaxArgs(1),
		ValidArgsFunction: upTo(1, completeTargets(dockerCli)),
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
	f, err := openFleet(cmd, dockerCli)
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
	nodes, err := swarmstore.Nodes(ctx, f.Manager)
	if err != nil {
		return err
	}
	out := dockerCli.Out()
	if n, err := swarmstore.FindNode(nodes, opts.target); err == nil {
		v := describe.Node(ctx, f, n)
		return writeFormatted(out, opts.format, v, func(w io.Writer) error { return describe.RenderNode(w, v) })
	}
	if s, err := swarmstore.LoadService(ctx, f.Manager, opts.target); err == nil {
		v, err := describe.Service(ctx, f, s)
		if err != nil {
			return err
		}
		return writeFormatted(out, opts.format, v, func(w io.Writer) error { return describe.RenderService(w, v) })
	} else if !errors.Is(err, swarmstore.ErrNoService) {
		return err
	}
	v, found, err := describe.Container(ctx, f, opts.target)
	switch {
	case found && err == nil:
		return writeFormatted(out, opts.format, v, func(w io.Writer) error { return describe.RenderContainer(w, v) })
	case found:
		return err
	case err != nil:
		return fmt.Errorf("no node, service or container named %q on the nodes that answer (%w)", opts.target, err)
	default:
		return fmt.Errorf("no node, service or container named %q in the fleet", opts.target)
	}
}
