package commands

import (
	"fmt"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-fleet/fleet/cliplugin/internal/dial"
	"github.com/docker-fleet/fleet/cliplugin/internal/events"
	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
)

type eventsOptions struct {
	since, until string
	format       string
}

func newEventsCommand(dockerCli command.Cli) *cobra.Command {
	var opts eventsOptions
	cmd := &cobra.Command{
		Use:   "events [OPTIONS]",
		Short: "Stream the fleet's events: nodes down and up, relocations, migrations",
		Long: `Prints the fleet's events as they happen: a node declared dead (with how many
containers it leaves to relocate) and back again (its relocated copies removed), each
container relocated (from, to, cold or warm), each migration done (from, to, downtime).
They are read from the manager's own event stream, so --since shows what happened
while nobody watched (as far back as the engine keeps events).`,
		Example: `  docker fleet events
  docker fleet events --since 1h --until 0s
  docker fleet events --format json
  docker fleet events --format '{{.Type}} {{.Container}} {{.To}}'`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runEvents(cmd, dockerCli, opts)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&opts.since, "since", "", "Show events since this timestamp or duration before now (10m)")
	flags.StringVar(&opts.until, "until", "", "Stop at this timestamp or duration before now (0s: now); default: follow")
	flags.StringVar(&opts.format, "format", "", `Format each event: "json" (one object a line), or a Go template`)
	return cmd
}

func runEvents(cmd *cobra.Command, dockerCli command.Cli, opts eventsOptions) error {
	emit, err := eventWriter(dockerCli, opts.format)
	if err != nil {
		return err
	}
	// Only the manager's engine is asked: no agent, no relay.
	f, err := fleet.Open(cmd.Context(), dockerCli.Client())
	if err != nil {
		return dial.EngineError(dockerCli.CurrentContext(), err)
	}
	return events.Watch(cmd.Context(), f, events.Options{Since: opts.since, Until: opts.until}, emit)
}

// eventWriter prints one event a line in the asked format.
func eventWriter(dockerCli command.Cli, format string) (func(events.Event) error, error) {
	out := dockerCli.Out()
	if format == "" {
		return func(e events.Event) error { _, err := fmt.Fprintln(out, e); return err }, nil
	}
	write, err := formatter(format, "")
	if err != nil {
		return nil, err
	}
	return func(e events.Event) error { return write(out, e) }, nil
}
