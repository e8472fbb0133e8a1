package commands

import (
	"io"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-fleet/fleet/cliplugin/internal/versions"
)

type versionOptions struct {
	format string
}

func newVersionCommand(dockerCli command.Cli) *cobra.Command {
	var opts versionOptions
	cmd := &cobra.Command{
		Use:   "version [OPTIONS]",
		Short: "Show the versions of docker-fleet and of every node's agent",
		Long: `Prints this docker-fleet's version and API version and, per fleet node, its
agent's version and API version, its engine and CRIU versions, or why its agent
did not answer. Then a line for each node whose agent speaks another API version
than this docker-fleet: an older agent lacks what came after it (docker fleet
init upgrades it); a newer one does everything this docker-fleet knows of.`,
		Example: `  docker fleet version
  docker fleet version --format json
  docker fleet version --format '{{.Client.Version}}'
  docker fleet version --format '{{range .Nodes}}{{.Node}} {{.API}}{{"\n"}}{{end}}'`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVersion(cmd, dockerCli, opts)
		},
	}
	cmd.Flags().StringVar(&opts.format, "format", "", formatHelp)
	return cmd
}

func runVersion(cmd *cobra.Command, dockerCli command.Cli, opts versionOptions) error {
	out := dockerCli.Out()
	f, err := openFleet(cmd, dockerCli)
	if err != nil {
		if opts.format == "" {
			// As docker version does: the client's part, then why there is
			// no more.
			_ = versions.RenderClient(out, versions.This())
		}
		return err
	}
	r, err := versions.Gather(cmd.Context(), f)
	if err != nil {
		return err
	}
	return writeFormatted(out, opts.format, r, func(w io.Writer) error { return versions.Render(w, r) })
}
