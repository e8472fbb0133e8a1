package commands

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-fleet/fleet/cliplugin/internal/deploy"
)

type scaleOptions struct {
	format string
}

func newScaleCommand(dockerCli command.Cli) *cobra.Command {
	var opts scaleOptions
	cmd := &cobra.Command{
		Use:   "scale [OPTIONS] SERVICE=REPLICAS|SERVICE=+N [SERVICE=REPLICAS...]",
		Short: "Create or remove replicas to reach a count",
		Long: `Creates replicas from the service's stored definition (from 0 too) or removes
them, from the busiest nodes first. SERVICE=+N adds N replicas to those there are:
two commands adding at once get distinct replica names (each name is claimed
fleet-wide before its container is made).`,
		Example: `  docker fleet scale web=5
  docker fleet scale web=0 api=2
  docker fleet scale web=+2`,
		Args:              cli.RequiresMinArgs(1),
		ValidArgsFunction: completeScale(dockerCli),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runScale(cmd, dockerCli, opts, args)
		},
	}
	cmd.Flags().StringVar(&opts.format, "format", "", formatHelp)
	return cmd
}

func runScale(cmd *cobra.Command, dockerCli command.Cli, opts scaleOptions, args []string) error {
	targets, err := parseScaleArgs(args)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	f, err := openFleet(cmd, dockerCli)
	if err != nil {
		return err
	}
	d := &deploy.Deployer{Fleet: f, Progress: dockerCli.Err()}
	res, err := d.Scale(ctx, targets)
	if err != nil {
		return err
	}
	return writeFormatted(dockerCli.Out(), opts.format, res, func(out io.Writer) error {
		for _, r := range res {
			fmt.Fprintf(out, "%s scaled from %d to %d\n", r.Service, r.From, r.To)
		}
		return nil
	})
}

func parseScaleArgs(args []string) ([]deploy.ScaleTarget, error) {
	seen := map[string]bool{}
	var out []deploy.ScaleTarget
	for _, a := range args {
		name, n, ok := strings.Cut(a, "=")
		n, add := strings.CutPrefix(n, "+")
		count, err := strconv.Atoi(n)
		if !ok || name == "" || err != nil || count < 0 || count > 1000 {
			return nil, fmt.Errorf("%q: use SERVICE=REPLICAS or SERVICE=+N with 0 to 1000 replicas", a)
		}
		if seen[name] {
			return nil, fmt.Errorf("%q: service %s given twice", a, name)
		}
		seen[name] = true
		out = append(out, deploy.ScaleTarget{Service: name, Replicas: count, Add: add})
	}
	return out, nil
}
