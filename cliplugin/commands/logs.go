package commands

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-fleet/fleet/cliplugin/internal/logs"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

type logsOptions struct {
	target       string
	follow       bool
	since, until string
	tail         string
	timestamps   bool
}

func newLogsCommand(dockerCli command.Cli) *cobra.Command {
	var opts logsOptions
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER|SERVICE",
		Short: "Show a container's logs across its migrations, or a service's",
		Long: `Prints a fleet container's logs as docker logs does (its stdout on stdout, its
stderr on stderr), wherever it runs now and from every node it ran on before: a
node's agent keeps a container's log when a migration takes it away (the last
8 MiB of it). With a service: every replica's lines interleaved by time, each
after its name, as docker compose logs does. -f follows the container from node
to node as it migrates, and ends when it is removed.`,
		Example: `  docker fleet logs web.1
  docker fleet logs -f --tail 20 web.1
  docker fleet logs --since 10m -t web
  docker fleet logs --since 2026-01-02T15:04:05Z --until 1m db.1`,
		Args:              cli.ExactArgs(1),
		ValidArgsFunction: upTo(1, completeContainersOrServices(dockerCli)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.target = args[0]
			return runLogs(cmd, dockerCli, opts)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&opts.follow, "follow", "f", false, "Follow log output, across migrations, until the container is removed")
	flags.StringVar(&opts.since, "since", "", "Show logs since a timestamp (2026-01-02T15:04:05Z) or a duration before now (10m)")
	flags.StringVar(&opts.until, "until", "", "Show logs before a timestamp (2026-01-02T15:04:05Z) or a duration before now (10m)")
	flags.StringVarP(&opts.tail, "tail", "n", "all", "Number of lines to show from the end of each container's logs")
	flags.BoolVarP(&opts.timestamps, "timestamps", "t", false, "Show timestamps")
	return cmd
}

func runLogs(cmd *cobra.Command, dockerCli command.Cli, opts logsOptions) error {
	// Ctrl-C ends following: not a failure.
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	now := time.Now()
	o := logs.Options{Follow: opts.follow, Tail: -1,
		Warn: func(err error) { fmt.Fprintln(dockerCli.Err(), "warning:", err) }}
	var err error
	if opts.since != "" {
		if o.Since, err = logs.ParseTime(opts.since, now); err != nil {
			return fmt.Errorf("--since %w", err)
		}
	}
	if opts.until != "" {
		if o.Until, err = logs.ParseTime(opts.until, now); err != nil {
			return fmt.Errorf("--until %w", err)
		}
	}
	if opts.tail != "all" {
		if o.Tail, err = strconv.Atoi(opts.tail); err != nil || o.Tail < 0 {
			return fmt.Errorf("--tail %q: a number of lines, or all", opts.tail)
		}
	}
	f, err := openFleet(cmd, dockerCli)
	if err != nil {
		return err
	}
	p := &logs.Printer{Out: dockerCli.Out(), Err: dockerCli.Err(), Timestamps: opts.timestamps}
	names := []string{opts.target}
	if _, err := swarmstore.LoadService(ctx, f.Manager, opts.target); err == nil {
		inv, err := f.Inventory(ctx)
		if err != nil {
			return err
		}
		names = nil
		for _, c := range inv.Containers(opts.target) {
			// Twice while it migrates: one log.
			if !slices.Contains(names, c.Name) {
				names = append(names, c.Name)
			}
		}
		if uerr := inv.Unreachable(); uerr != nil {
			o.Warn(fmt.Errorf("the replicas of %s on nodes that do not answer are left out: %w", opts.target, uerr))
		}
		if len(names) == 0 {
			return fmt.Errorf("service %s has no containers on the nodes that answer", opts.target)
		}
		p.Prefix = true
		p.Pad(names)
	} else if !errors.Is(err, swarmstore.ErrNoService) {
		return err
	}
	err = logs.Show(ctx, &logs.Fleet{Fleet: f}, names, o, p.Print)
	if ctx.Err() != nil {
		return nil // interrupted
	}
	return err
}
