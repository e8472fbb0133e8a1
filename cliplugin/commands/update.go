package commands

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/mattn/go-shellwords"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/docker-fleet/fleet/cliplugin/internal/deploy"
	"github.com/docker-fleet/fleet/shared/spec"
)

type updateOptions struct {
	image         string
	envAdd        []string
	envRm         []string
	publishAdd    []string
	publishRm     []string
	mountAdd      []string
	mountRm       []string
	args          string
	entrypoint    string
	cpus          int
	memory        string
	health        healthOptions
	parallelism   int
	delay         time.Duration
	monitor       time.Duration
	order         string
	failureAction string
	rollback      bool
	format        string
}

func newUpdateCommand(dockerCli command.Cli) *cobra.Command {
	var opts updateOptions
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] SERVICE",
		Short: "Change a service and roll its replicas onto the change",
		Long: `Changes a service's definition and replaces its replicas with the new one,
--update-parallelism at a time (default 1), stop-first as docker service update
does: each replica leaves the network's DNS, stops gracefully, and its
successor is made under the same name (web.2 stays web.2), with the same
number of exclusive cores, on the same node where it fits. A successor must
pass its healthcheck (or, without one, keep running for --update-monitor)
before the next replica is replaced. One that does not come up stops the
update; by default every replaced replica is then rolled back
(--update-failure-action pause leaves it paused instead).

The update is kept in the swarm beside the definition: if the CLI is
interrupted, "docker fleet update SERVICE" with no change finishes it, and
"docker fleet update --rollback SERVICE" puts the service back on the
definition before its newest update. While an update has not ended, scale
and migrate of its replicas are refused.`,
		Example: `  docker fleet update --image my/api:2 --env-add LOG=debug api
  docker fleet update --update-parallelism 2 --update-delay 10s --image my/api:3 api
  docker fleet update --health-cmd "wget -qO- localhost:8080/health" --health-interval 5s api
  docker fleet update api            # finish an interrupted or paused update
  docker fleet update --rollback api`,
		Args:              cli.ExactArgs(1),
		ValidArgsFunction: upTo(1, completeServices(dockerCli)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUpdate(cmd, dockerCli, opts, args[0])
		},
	}
	opts.addFlags(cmd.Flags())
	return cmd
}

func (opts *updateOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&opts.image, "image", "", "Service image tag")
	f.StringArrayVar(&opts.envAdd, "env-add", nil, "Add or update an environment variable KEY=VALUE")
	f.StringArrayVar(&opts.envRm, "env-rm", nil, "Remove an environment variable KEY")
	f.StringArrayVar(&opts.publishAdd, "publish-add", nil, "Add a published port HOST:CONTAINER[/udp]")
	f.StringArrayVar(&opts.publishRm, "publish-rm", nil, "Remove a published port by its container port (80, 53/udp)")
	f.StringArrayVar(&opts.mountAdd, "mount-add", nil, "Add a volume mount VOLUME:/path[:ro]")
	f.StringArrayVar(&opts.mountRm, "mount-rm", nil, "Remove a mount by its path in the container")
	f.StringVar(&opts.args, "args", "", `Service command args ("" keeps the image's)`)
	f.StringVar(&opts.entrypoint, "entrypoint", "", "Overwrite the default ENTRYPOINT of the image")
	f.IntVar(&opts.cpus, "cpus", 0, "Exclusive cores per replica")
	f.StringVar(&opts.memory, "memory", "", "Memory limit per replica (64m, 1g)")
	opts.health.addFlags(f)
	f.IntVar(&opts.parallelism, "update-parallelism", 1, "Maximum number of replicas replaced at once")
	f.DurationVar(&opts.delay, "update-delay", 0, "Delay between batches of replicas (ns|us|ms|s|m|h)")
	f.DurationVar(&opts.monitor, "update-monitor", deploy.DefaultMonitor, "How long a replica without a healthcheck must run to count as up (ns|us|ms|s|m|h)")
	f.StringVar(&opts.order, "update-order", deploy.OrderStopFirst, `Update order ("start-first", "stop-first")`)
	f.StringVar(&opts.failureAction, "update-failure-action", deploy.ActionRollback, `Action on update failure ("pause", "rollback")`)
	f.BoolVar(&opts.rollback, "rollback", false, "Roll back to the definition before the newest update")
	f.StringVar(&opts.format, "format", "", formatHelp)
}

func runUpdate(cmd *cobra.Command, dockerCli command.Cli, opts updateOptions, service string) error {
	change, err := opts.change(cmd)
	if err != nil {
		return err
	}
	if opts.rollback && change != nil {
		return errors.New("--rollback: give no other change with it")
	}
	if opts.parallelism < 1 {
		return fmt.Errorf("--update-parallelism %d: at least 1", opts.parallelism)
	}
	if opts.delay < 0 || opts.monitor < 0 {
		return errors.New("--update-delay, --update-monitor: not negative")
	}
	f, err := openFleet(cmd, dockerCli)
	if err != nil {
		return err
	}
	d := &deploy.Deployer{Fleet: f, Progress: dockerCli.Err()}
	// What is not given comes from the service's update_config, else
	// docker's defaults.
	var o deploy.UpdateOptions
	changed := cmd.Flags().Changed
	if changed("update-parallelism") {
		o.Parallelism = opts.parallelism
	}
	if changed("update-delay") {
		o.Delay = opts.delay
	}
	if changed("update-monitor") {
		o.Monitor = opts.monitor
	}
	if changed("update-order") {
		o.Order = opts.order
	}
	if changed("update-failure-action") {
		o.FailureAction = opts.failureAction
	}
	var res deploy.UpdateResult
	if opts.rollback {
		res, err = d.Rollback(cmd.Context(), service, o)
	} else {
		res, err = d.Update(cmd.Context(), service, change, o)
	}
	if err != nil {
		return err
	}
	return writeFormatted(dockerCli.Out(), opts.format, res, func(out io.Writer) error {
		fmt.Fprintf(out, "%s: %s, revision %d to %d\n", res.Service, res.State, res.From, res.To)
		return renderContainers(out, res.Replaced)
	})
}

// change is what the flags change in a definition (nil: none given).
func (opts updateOptions) change(cmd *cobra.Command) (func(*spec.Service) error, error) {
	fl := cmd.Flags()
	var steps []func(*spec.Service) error
	if fl.Changed("image") {
		if opts.image == "" {
			return nil, errors.New("--image: empty")
		}
		steps = append(steps, func(s *spec.Service) error { s.Image = opts.image; return nil })
	}
	lists, err := opts.listSteps()
	if err != nil {
		return nil, err
	}
	steps = append(steps, lists...)
	if fl.Changed("args") {
		words, err := shellwords.Parse(opts.args)
		if err != nil {
			return nil, fmt.Errorf("--args: %w", err)
		}
		steps = append(steps, func(s *spec.Service) error { s.Command = words; return nil })
	}
	if fl.Changed("entrypoint") {
		words, err := shellwords.Parse(opts.entrypoint)
		if err != nil {
			return nil, fmt.Errorf("--entrypoint: %w", err)
		}
		steps = append(steps, func(s *spec.Service) error { s.Entrypoint = words; return nil })
	}
	if fl.Changed("cpus") {
		if opts.cpus < 0 {
			return nil, fmt.Errorf("--cpus %d: a number of cores", opts.cpus)
		}
		steps = append(steps, func(s *spec.Service) error { s.Cores, s.Cpuset = opts.cpus, ""; return nil })
	}
	if fl.Changed("memory") {
		m, err := spec.ParseMemory("--memory", opts.memory)
		if err != nil {
			return nil, err
		}
		steps = append(steps, func(s *spec.Service) error { s.Memory = m; return nil })
	}
	if opts.health.set(fl) {
		steps = append(steps, func(s *spec.Service) error {
			h, err := opts.health.apply(fl, s.Healthcheck)
			s.Healthcheck = h
			return err
		})
	}
	if len(steps) == 0 {
		return nil, nil
	}
	return func(s *spec.Service) error {
		for _, step := range steps {
			if err := step(s); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

// listSteps is change's phase for the flags that add to or remove from the
// definition's lists: environment, published ports and mounts, in that order.
func (opts updateOptions) listSteps() ([]func(*spec.Service) error, error) {
	var steps []func(*spec.Service) error
	for _, kv := range opts.envAdd {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--env-add %q: use KEY=VALUE", kv)
		}
		steps = append(steps, func(s *spec.Service) error {
			s.Env = append(slices.DeleteFunc(s.Env, func(e string) bool { return envKey(e) == k }), kv)
			return nil
		})
	}
	for _, k := range opts.envRm {
		steps = append(steps, func(s *spec.Service) error {
			s.Env = slices.DeleteFunc(s.Env, func(e string) bool { return envKey(e) == k })
			return nil
		})
	}
	for _, p := range opts.publishAdd {
		port, err := spec.ParsePort(p)
		if err != nil {
			return nil, asFlag("--publish-add ", err)
		}
		steps = append(steps, func(s *spec.Service) error {
			s.Ports = append(slices.DeleteFunc(s.Ports, func(q spec.Port) bool { return q.Container == port.Container && q.Protocol == port.Protocol }), port)
			return nil
		})
	}
	for _, p := range opts.publishRm {
		num, proto, _ := strings.Cut(p, "/")
		if _, after, ok := strings.Cut(num, ":"); ok {
			num = after
		}
		if proto == "" {
			proto = "tcp"
		}
		steps = append(steps, func(s *spec.Service) error {
			n := len(s.Ports)
			s.Ports = slices.DeleteFunc(s.Ports, func(q spec.Port) bool { return fmt.Sprint(q.Container) == num && q.Protocol == proto })
			if len(s.Ports) == n {
				return fmt.Errorf("--publish-rm %s: the service publishes no container port %s/%s", p, num, proto)
			}
			return nil
		})
	}
	for _, v := range opts.mountAdd {
		vol, err := spec.ParseVolume(v)
		if err != nil {
			return nil, asFlag("--mount-add ", err)
		}
		steps = append(steps, func(s *spec.Service) error {
			s.Volumes = append(slices.DeleteFunc(s.Volumes, func(w spec.Volume) bool { return w.Target == vol.Target }), vol)
			return nil
		})
	}
	for _, target := range opts.mountRm {
		steps = append(steps, func(s *spec.Service) error {
			n := len(s.Volumes)
			s.Volumes = slices.DeleteFunc(s.Volumes, func(w spec.Volume) bool { return w.Target == target })
			if len(s.Volumes) == n {
				return fmt.Errorf("--mount-rm %s: the service mounts nothing there", target)
			}
			return nil
		})
	}
	return steps, nil
}

func envKey(kv string) string {
	k, _, _ := strings.Cut(kv, "=")
	return k
}
