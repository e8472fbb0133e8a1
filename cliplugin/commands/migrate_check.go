package commands

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-fleet/fleet/cliplugin/internal/deploy"
)

// runMigrateCheck prints whether the container would migrate; a container
// that would not is an error naming every reason (exit 1).
func runMigrateCheck(cmd *cobra.Command, dockerCli command.Cli, d *deploy.Deployer, opts migrateOptions, name string) error {
	res, err := d.Check(cmd.Context(), name, opts.to)
	if err != nil {
		return err
	}
	if opts.format != "" || res.OK {
		err := writeFormatted(dockerCli.Out(), opts.format, res, func(out io.Writer) error {
			_, err := fmt.Fprintf(out, "%s on %s can migrate to %s: nothing found that CRIU cannot checkpoint\n", res.Container, res.Node, res.To)
			return err
		})
		if err != nil || res.OK {
			return err
		}
	}
	return errors.New(res.Container + " on " + res.Node + " cannot migrate: " + strings.Join(res.Problems, "; "))
}
