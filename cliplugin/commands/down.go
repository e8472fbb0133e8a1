package commands

import (
	"errors"
	"fmt"
	"io"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-fleet/fleet/cliplugin/internal/deploy"
	"github.com/docker-fleet/fleet/cliplugin/internal/specfile"
)

type downOptions struct {
	file    string
	project string
	volumes bool
	format  string
}

func newDownCommand(dockerCli command.Cli) *cobra.Command {
	var opts downOptions
	cmd := &cobra.Command{
		Use:   "down [-f FILE | -p PROJECT] [-v]",
		Short: "Remove a Compose project's services",
		Long: `Removes every service of a Compose project, as docker fleet rm removes a
service (its replicas, its stored definition), the services that depend on
others first, and lists what it removed. The project is named by its file
(-f, named as create names it) or by its name (-p).

-v also removes the named and anonymous volumes the project's containers
used: on the manager's own engine; on other nodes they are listed and left,
since the agents cannot remove volumes yet. External volumes stay.`,
		Example: `  docker fleet down -f compose.yaml
  docker fleet down -p shop -v`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDown(cmd, dockerCli, opts)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.file, "file", "f", "", `Compose file of the project ("-" for stdin)`)
	f.StringVarP(&opts.project, "project-name", "p", "", "Project name")
	f.BoolVarP(&opts.volumes, "volumes", "v", false, "Also remove the volumes the project's containers used")
	f.StringVar(&opts.format, "format", "", formatHelp)
	_ = cmd.RegisterFlagCompletionFunc("project-name", completeProjects(dockerCli))
	_ = cmd.RegisterFlagCompletionFunc("file", completeFiles())
	return cmd
}

func runDown(cmd *cobra.Command, dockerCli command.Cli, opts downOptions) error {
	project, err := opts.projectName(dockerCli.In())
	if err != nil {
		return err
	}
	f, err := openFleet(cmd, dockerCli)
	if err != nil {
		return err
	}
	d := &deploy.Deployer{Fleet: f}
	res, err := d.Down(cmd.Context(), project, opts.volumes)
	if res != nil {
		if werr := writeFormatted(dockerCli.Out(), opts.format, res, func(out io.Writer) error { return renderDown(out, res) }); err == nil {
			err = werr
		}
	}
	return err
}

// projectName is the project -p names, or the one -f's file makes (with
// -p too, -p names it, as docker compose does).
func (opts downOptions) projectName(stdin io.Reader) (string, error) {
	if opts.file == "" {
		if opts.project == "" {
			return "", errors.New("name the project: -f FILE or -p PROJECT")
		}
		return opts.project, nil
	}
	r, err := readFile(opts.file, stdin, "", opts.project)
	if err != nil {
		return "", err
	}
	if r.Format != specfile.Compose {
		return "", fmt.Errorf("-f %s: a %s has no project: remove its services with docker fleet rm", opts.file, r.Format)
	}
	return r.Project, nil
}

// renderDown lists what down removed, as rm does, and then the volumes.
func renderDown(out io.Writer, res *deploy.DownResult) error {
	for _, r := range res.Removed {
		fmt.Fprintln(out, r)
	}
	for _, v := range res.Volumes {
		if v.Removed {
			fmt.Fprintf(out, "volume %s removed from %s\n", v.Volume, v.Node)
		} else {
			fmt.Fprintf(out, "volume %s left on %s: %s\n", v.Volume, v.Node, v.Why)
		}
	}
	return nil
}
