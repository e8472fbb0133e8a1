package commands

import (
	"fmt"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-fleet/fleet/cliplugin/internal/deploy"
)

func newRmCommand(dockerCli command.Cli) *cobra.Command {
	return &cobra.Command{
		Use:     "rm SERVICE|CONTAINER [SERVICE|CONTAINER...]",
		Aliases: []string{"remove"},
		Short:   "Remove services (with their definitions) or containers",
		Long: `Removes every replica of a service and its stored definition, or single
containers (the service then wants one replica fewer). Their cores and memory
are free again.`,
		Example: `  docker fleet rm web
  docker fleet rm web.2`,
		Args:              cli.RequiresMinArgs(1),
		ValidArgsFunction: completeContainersOrServices(dockerCli),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRm(cmd, dockerCli, args)
		},
	}
}

func runRm(cmd *cobra.Command, dockerCli command.Cli, names []string) error {
	ctx := cmd.Context()
	f, err := openFleet(cmd, dockerCli)
	if err != nil {
		return err
	}
	d := &deploy.Deployer{Fleet: f}
	removed, err := d.Remove(ctx, names)
	for _, r := range removed {
		fmt.Fprintln(dockerCli.Out(), r)
	}
	return err
}
