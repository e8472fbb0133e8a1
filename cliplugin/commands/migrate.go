package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/docker-fleet/fleet/cliplugin/internal/deploy"
	"github.com/docker-fleet/fleet/cliplugin/internal/progressview"
	"github.com/docker-fleet/fleet/shared/api"
)

type migrateOptions struct {
	to     string
	format string
	check  bool
	follow string
	quiet  bool
}

func newMigrateCommand(dockerCli command.Cli) *cobra.Command {
	var opts migrateOptions
	cmd := &cobra.Command{
		Use:   "migrate [OPTIONS] CONTAINER",
		Short: "Live-migrate a container to another node",
		Long: `Moves a running fleet container to another node with CRIU, keeping its
process memory, the files it wrote, its named volumes, its IP and aliases on
the fleet network, its published ports, its limits and as many exclusive cores,
and its established TCP connections. The source node's agent streams it
straight to the destination's agent over mutual TLS.

It ends with the container running on the destination only (exit 0), or still
running on the source with its state (exit 1, with the reason). What CRIU
cannot checkpoint (io_uring, multipath TCP, a unix socket connected to the
outside, a bind mount of a host path, …) is refused before the freeze;
--check says so without migrating (exit 0 when it would go, 1 with the
reasons when not).

Ctrl-C detaches the command, not the migration: it goes on and ends as it
would have; --follow ID (the id is on the first line) shows how, and records it.

Progress goes to stderr: on a terminal a line a phase, updated in place, the
transfer's with a bar, its bytes, rate and time left (as docker pull shows
layers); otherwise plain lines. -q shows none, only the result.`,
		Example: `  docker fleet migrate web.1 --to h3
  docker fleet migrate web.1                 # the scheduler picks the node
  docker fleet migrate web.1 --format json
  docker fleet migrate --check db.1          # would it go? changes nothing
  docker fleet migrate --follow 3f2a9c0d1e   # follow a migration to its end`,
		Args: func(cmd *cobra.Command, args []string) error {
			if opts.follow != "" {
				return cli.NoArgs(cmd, args)
			}
			return cli.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.follow != "" {
				return runMigrateFollow(cmd, dockerCli, opts)
			}
			return runMigrate(cmd, dockerCli, opts, args[0])
		},
		ValidArgsFunction: completeMigrate(dockerCli),
	}
	cmd.Flags().StringVar(&opts.to, "to", "", "Destination node (default: the scheduler picks)")
	cmd.Flags().StringVar(&opts.format, "format", "", formatHelp)
	cmd.Flags().BoolVar(&opts.check, "check", false, "Only check whether the container can migrate now; change nothing")
	cmd.Flags().StringVar(&opts.follow, "follow", "", "Follow the migration with this id (from its first line) to its end")
	cmd.Flags().BoolVarP(&opts.quiet, "quiet", "q", false, "Show no progress, only the result (and errors)")
	_ = cmd.RegisterFlagCompletionFunc("to", completeNodes(dockerCli))
	return cmd
}

// migrateDeployer opens the fleet with a context that Ctrl-C ends: that
// stops following a migration, which goes on (deploy.Detached).
func migrateDeployer(cmd *cobra.Command, dockerCli command.Cli) (context.Context, context.CancelFunc, *deploy.Deployer, error) {
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	f, err := openFleet(cmd, dockerCli)
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	return ctx, stop, &deploy.Deployer{Fleet: f, Progress: dockerCli.Err()}, nil
}

func runMigrate(cmd *cobra.Command, dockerCli command.Cli, opts migrateOptions, name string) error {
	ctx, stop, d, err := migrateDeployer(cmd, dockerCli)
	if err != nil {
		return err
	}
	defer stop()
	if opts.check {
		return runMigrateCheck(cmd, dockerCli, d, opts, name)
	}
	migration, shown := progressView(dockerCli, d, opts.quiet)
	res, err := d.Migrate(ctx, name, opts.to, migration(""))
	shown()
	var detached *deploy.Detached
	if errors.As(err, &detached) {
		return cli.StatusError{StatusCode: 130, Status: detached.Error()}
	}
	if err != nil {
		return err
	}
	return writeMigrateResult(dockerCli, opts, res)
}

func runMigrateFollow(cmd *cobra.Command, dockerCli command.Cli, opts migrateOptions) error {
	ctx, stop, d, err := migrateDeployer(cmd, dockerCli)
	if err != nil {
		return err
	}
	defer stop()
	migration, shown := progressView(dockerCli, d, opts.quiet)
	res, err := d.Follow(ctx, opts.follow, migration(""))
	shown()
	if err != nil {
		return err
	}
	return writeMigrateResult(dockerCli, opts, res)
}

func writeMigrateResult(dockerCli command.Cli, opts migrateOptions, res *api.MigrateResult) error {
	return writeFormatted(dockerCli.Out(), opts.format, res, func(out io.Writer) error {
		_, err := fmt.Fprintln(out, summary(res))
		return err
	})
}

// progressView shows migrations' progress on stderr as docker pull shows
// its own (progressview), the deployer's notices among it: migration(key)
// is the onEvent of one migration (key "": the only one, a line a phase;
// else a line for it), and shown must be called before the result is
// printed. Quiet shows no progress; notices and errors still go to
// stderr.
func progressView(dockerCli command.Cli, d *deploy.Deployer, quiet bool) (migration func(key string) func(api.MigrateEvent), shown func()) {
	if quiet {
		return func(string) func(api.MigrateEvent) { return func(api.MigrateEvent) {} }, func() {}
	}
	v := progressview.New(dockerCli.Err())
	d.Progress = v
	return v.Migration, func() {
		_ = v.Close()
		d.Progress = dockerCli.Err()
	}
}

// summary is a migration's last lines: its figures and its frozen window.
func summary(r *api.MigrateResult) string {
	s := fmt.Sprintf("migrated %s from %s to %s: downtime %.2fs, total %.1fs, %s",
		r.Container, r.From, r.To, r.Downtime, r.Total, units.HumanSize(float64(r.Bytes)))
	if r.Phases != nil {
		s += "\n  frozen window: " + r.Phases.String()
	}
	return s
}
