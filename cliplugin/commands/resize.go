package commands

import (
	"errors"
	"fmt"
	"io"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-fleet/fleet/cliplugin/internal/deploy"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/spec"
)

type resizeOptions struct {
	cpus       int
	cpusetCpus string
	memory     string
	memorySwap string
	format     string
}

func newResizeCommand(dockerCli command.Cli) *cobra.Command {
	var opts resizeOptions
	cmd := &cobra.Command{
		Use:   "resize [OPTIONS] CONTAINER|SERVICE",
		Short: "Change cores and memory in place, without a restart",
		Long: `Changes a container's (or every replica's) exclusive cores and memory limits
in place: the process keeps running, with the same PID. --cpus N re-pins to N
exclusive cores, keeping those it has where it can. What the node cannot give
is refused, naming the conflict; so is a memory limit below what the container
uses now.`,
		Example: `  docker fleet resize web.1 --memory 96m
  docker fleet resize web.1 --cpuset-cpus 1
  docker fleet resize web --cpus 2`,
		Args:              cli.ExactArgs(1),
		ValidArgsFunction: upTo(1, completeContainersOrServices(dockerCli)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runResize(cmd, dockerCli, opts, args[0])
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.cpus, "cpus", 0, "Number of exclusive cores")
	f.StringVar(&opts.cpusetCpus, "cpuset-cpus", "", "Exclusive cores by number (0-3, 0,1)")
	f.StringVar(&opts.memory, "memory", "", "Memory limit (64m, 1g)")
	f.StringVar(&opts.memorySwap, "memory-swap", "", "Memory plus swap limit (-1: unlimited)")
	f.StringVar(&opts.format, "format", "", formatHelp)
	return cmd
}

func runResize(cmd *cobra.Command, dockerCli command.Cli, opts resizeOptions, target string) error {
	req, err := opts.request(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	f, err := openFleet(cmd, dockerCli)
	if err != nil {
		return err
	}
	d := &deploy.Deployer{Fleet: f}
	done, err := d.Resize(ctx, target, req)
	if err != nil {
		return err
	}
	return writeFormatted(dockerCli.Out(), opts.format, done, func(out io.Writer) error { return renderContainers(out, done) })
}

func (opts resizeOptions) request(cmd *cobra.Command) (api.ResizeRequest, error) {
	var req api.ResizeRequest
	changed := cmd.Flags().Changed
	if changed("cpus") && changed("cpuset-cpus") {
		return req, errors.New("--cpus and --cpuset-cpus: give one or the other")
	}
	if changed("cpus") {
		if opts.cpus < 1 || opts.cpus > cpuset.MaxCPU {
			return req, fmt.Errorf("--cpus %d: at least one core", opts.cpus)
		}
		req.Cores = &opts.cpus
	}
	if changed("cpuset-cpus") {
		set, err := cpuset.Parse(opts.cpusetCpus)
		if err != nil {
			return req, fmt.Errorf("--cpuset-cpus: %w", err)
		}
		if len(set) == 0 {
			return req, errors.New("--cpuset-cpus: empty")
		}
		s := set.String()
		req.Cpuset = &s
	}
	if changed("memory") {
		m, err := spec.ParseMemory("--memory", opts.memory)
		if err != nil {
			return req, err
		}
		req.Memory = &m
	}
	if changed("memory-swap") {
		m, err := spec.ParseMemorySwap("--memory-swap", opts.memorySwap)
		if err != nil {
			return req, err
		}
		req.MemorySwap = &m
	}
	if req == (api.ResizeRequest{}) {
		return req, errors.New("nothing to change: give --cpus, --cpuset-cpus, --memory or --memory-swap")
	}
	return req, nil
}
