package commands

import (
	"fmt"
	"io"

	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-fleet/fleet/cliplugin/internal/describe"
)

type psOptions struct {
	services []string
	filters  []string
	quiet    bool
	format   string
}

func newPsCommand(dockerCli command.Cli) *cobra.Command {
	var opts psOptions
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS] [SERVICE...]",
		Short: "List the fleet's containers across the nodes",
		Long: `Lists every fleet container on every node, or those of the SERVICEs given, by
service and replica: its node, state, exclusive cores, memory limit, IP on the
fleet network, how long it has run and its last migration.

--filter KEY=VALUE keeps the containers that match, as docker's: node (hostname
or ID prefix), service, project (Compose) and state (created, running, paused,
restarting, removing, exited, dead). The same key given twice matches either
value; different keys must all match.

A node whose agent does not answer is named on stderr, and its containers are
missing from the list.`,
		Example: `  docker fleet ps
  docker fleet ps web api
  docker fleet ps --filter node=h2 --filter state=running
  docker fleet ps --filter state=exited --filter state=dead
  docker fleet ps --filter project=shop -q
  docker fleet ps --format json
  docker fleet ps --format '{{.Name}} {{.Node}} {{.LastMigration}}'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.services = args
			return runPs(cmd, dockerCli, opts)
		},
		ValidArgsFunction: completeServices(dockerCli),
	}
	flags := cmd.Flags()
	flags.StringArrayVarP(&opts.filters, "filter", "f", nil, "Filter by node=, service=, project= or state= (repeatable)")
	flags.BoolVarP(&opts.quiet, "quiet", "q", false, "Only show container names")
	flags.StringVar(&opts.format, "format", "", `Format output: "table" (default), "json" (one object a line), or a Go template`)
	_ = cmd.RegisterFlagCompletionFunc("filter", completePsFilter(dockerCli))
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runPs(cmd *cobra.Command, dockerCli command.Cli, opts psOptions) error {
	// Everything the flags say is checked before the fleet is asked.
	filter, err := describe.ParsePSFilter(opts.filters)
	if err != nil {
		return err
	}
	write, err := psWriter(opts)
	if err != nil {
		return err
	}
	f, err := openFleet(cmd, dockerCli)
	if err != nil {
		return err
	}
	v, err := describe.PS(cmd.Context(), f, describe.PSOptions{Services: opts.services, Filter: filter})
	if err != nil {
		return err
	}
	for _, n := range v.Unreachable {
		fmt.Fprintf(dockerCli.Err(), "warning: node %s did not answer, its containers are not listed: %s\n", n.Node, n.Err)
	}
	return write(dockerCli.Out(), v.Rows)
}

// psWriter writes ps's rows as asked: names only (-q), the table, one JSON
// object a line, or a template a line.
func psWriter(opts psOptions) (func(io.Writer, []describe.PSRow) error, error) {
	switch {
	case opts.quiet:
		return func(out io.Writer, rows []describe.PSRow) error {
			for _, r := range rows {
				if _, err := fmt.Fprintln(out, r.Name); err != nil {
					return err
				}
			}
			return nil
		}, nil
	case opts.format == "" || opts.format == "table":
		return describe.RenderPS, nil
	}
	write, err := formatter(opts.format, "")
	if err != nil {
		return nil, err
	}
	return func(out io.Writer, rows []describe.PSRow) error {
		for _, r := range rows {
			if err := write(out, r); err != nil {
				return err
			}
		}
		return nil
	}, nil
}
