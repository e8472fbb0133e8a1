// Package commands is the cobra layer of the CLI plugin: one file per
// subcommand, each with its options, a newXCommand and a runX that calls
// into the internal packages.
package commands

import (
	"fmt"

	"github.com/docker/cli/cli-plugins/plugin"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

// NewRootCommand returns the `fleet` command with its subcommands.
func NewRootCommand(dockerCli command.Cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Pin, resize, scale and live-migrate containers across a swarm",
		Long: `docker fleet turns the engines of a Docker swarm into one fleet: containers
placed on exclusive cores, resized in place, scaled as services and
live-migrated between hosts with CRIU.

Run it against the fleet's manager engine (the current docker context, or
docker --context NAME fleet …). The agents are reached through that engine's
API alone, unless --direct.`,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return plugin.PersistentPreRunE(cmd, args)
		},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	addTransportFlags(cmd)
	cmd.AddCommand(
		newInitCommand(dockerCli),
		newCreateCommand(dockerCli),
		newScaleCommand(dockerCli),
		newResizeCommand(dockerCli),
		newUpdateCommand(dockerCli),
		newRmCommand(dockerCli),
		newDownCommand(dockerCli),
		newMigrateCommand(dockerCli),
		newRebalanceCommand(dockerCli),
		newDrainCommand(dockerCli),
		newActivateCommand(dockerCli),
		newLeaveCommand(dockerCli),
		newDescribeCommand(dockerCli),
		newPsCommand(dockerCli),
		newEventsCommand(dockerCli),
		newLogsCommand(dockerCli),
		newVersionCommand(dockerCli),
	)
	for _, sub := range cmd.Commands() {
		prefixErrors(sub)
	}
	return cmd
}

// prefixErrors makes every failure read like docker's own:
// "docker fleet init: …".
func prefixErrors(cmd *cobra.Command) {
	run := cmd.RunE
	if run == nil {
		return
	}
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if err := run(c, args); err != nil {
			return fmt.Errorf("docker fleet %s: %w", c.Name(), err)
		}
		return nil
	}
}
