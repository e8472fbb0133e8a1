package commands

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-fleet/fleet/cliplugin/internal/deploy"
	"github.com/docker-fleet/fleet/cliplugin/internal/specfile"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

type createOptions struct {
	file       string
	name       string
	image      string
	replicas   int
	node       string
	constraint []string
	cpus       int
	cpusetCpus string
	memory     string
	memorySwap string
	env        []string
	publish    []string
	volumes    []string
	strategy   string
	checkpoint string
	format     string
	project    string
	dryRun     bool
	orphans    bool
	wait       time.Duration
	health     healthOptions
}

func newCreateCommand(dockerCli command.Cli) *cobra.Command {
	var opts createOptions
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] [-- COMMAND [ARG...]]",
		Short: "Create a service: replicas placed on exclusive cores across the fleet",
		Long: `Creates a service from flags or from a file, and its replicas, named
SERVICE.1, SERVICE.2, … and placed by the scheduler over the nodes' free cores
and memory. --cpus N gives each replica N cores of its own; --cpuset-cpus names
them. The definition is kept in the swarm, so scale works from any machine.

--checkpoint-every has each replica checkpointed in the background and the
checkpoint kept on a standby node, which restores it warm (memory and all) if
the replica's node dies, instead of restarting it from its image.

--constraint limits the nodes as docker service create --constraint does:
node.hostname, node.id, node.role (manager or worker), node.labels.KEY
(docker node update --label-add KEY=VALUE), node.platform.os and
node.platform.arch, each == or != a value; every one given must hold. A
Compose file's deploy.placement.constraints are the same.

-f reads a Compose file (x-fleet: {cpus: N} for exclusive cores,
checkpoint-every: 30s for warm relocation), a RESTfulSwarm task or job, or a
Genisys service definition, told apart by content; "-f -" reads standard
input. A Compose file's services form a project, named as docker compose
names it (--project-name, else name: in the file, else the file's folder);
its images with build: are built once on the manager first, and a service
is made only once those it depends_on are running, healthy or completed
successfully (each wait bounded by --wait-timeout).

A Compose file whose project exists is applied to it, as docker compose up
applied again: each service whose definition changed is updated as
"docker fleet update" does (rolled, health-gated, rolled back on failure),
new services are made, unchanged ones are left alone, and services no longer
in the file are removed only with --remove-orphans.

--dry-run checks and places everything and prints the plan (what is built,
which image goes to which node, where each replica lands, and for a project
that exists what changes), changing nothing.`,
		Example: `  docker fleet create --name web --image fleet-workload --replicas 3 --cpus 1 --memory 64m
  docker fleet create --name api --image my/api --node h2 --cpuset-cpus 1 -p 8080:80 -- serve --port 80
  docker fleet create --name db --image postgres:15 --cpus 1 --checkpoint-every 30s
  docker fleet create --name db --image postgres:15 --constraint node.labels.disk==ssd --constraint node.role!=manager
  docker fleet create -f compose.yaml
  docker fleet create -f compose.yaml --project-name shop --dry-run
  docker fleet create -f compose.yaml --wait-timeout 5m`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCreate(cmd, dockerCli, opts, args)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.file, "file", "f", "", `Service file: Compose, RESTfulSwarm task or job, Genisys ("-" for stdin)`)
	f.StringVar(&opts.name, "name", "", "Service name")
	f.StringVar(&opts.image, "image", "", "Image")
	f.IntVar(&opts.replicas, "replicas", 1, "Number of replicas")
	f.StringVar(&opts.node, "node", "", "Place every replica on this node")
	f.StringArrayVar(&opts.constraint, "constraint", nil, "Placement constraint, as docker service create's (node.labels.disk==ssd, node.role!=manager); all given must hold")
	f.IntVar(&opts.cpus, "cpus", 0, "Exclusive cores per replica")
	f.StringVar(&opts.cpusetCpus, "cpuset-cpus", "", "Exclusive cores per replica, by number (0-3, 0,1)")
	f.StringVar(&opts.memory, "memory", "", "Memory limit per replica (64m, 1g)")
	f.StringVar(&opts.memorySwap, "memory-swap", "", "Memory plus swap limit per replica (-1: unlimited)")
	f.StringArrayVarP(&opts.env, "env", "e", nil, "Environment variable KEY=VALUE")
	f.StringArrayVarP(&opts.publish, "publish", "p", nil, "Publish a port HOST:CONTAINER[/udp]")
	f.StringArrayVarP(&opts.volumes, "volume", "v", nil, "Mount a volume VOLUME:/path[:ro]")
	f.StringVar(&opts.strategy, "strategy", spec.Spread, "Placement strategy: spread or binpack")
	f.StringVar(&opts.checkpoint, "checkpoint-every", "", "Checkpoint each replica in the background at this interval and keep it on a standby node, to restore it warm if its node dies (5s to 24h)")
	f.StringVar(&opts.format, "format", "", formatHelp)
	f.StringVar(&opts.project, "project-name", "", "Project name of a Compose file (default: its name:, else its folder's name)")
	f.BoolVar(&opts.dryRun, "dry-run", false, "Check and place everything and print the plan, changing nothing")
	f.BoolVar(&opts.orphans, "remove-orphans", false, "Applying a Compose file to its project: remove the project's services the file no longer has")
	f.DurationVar(&opts.wait, "wait-timeout", deploy.DefaultWaitTimeout, "How long to wait for the services a service depends_on")
	opts.health.addFlags(f)
	_ = cmd.RegisterFlagCompletionFunc("node", completeNodes(dockerCli))
	_ = cmd.RegisterFlagCompletionFunc("file", completeFiles())
	return cmd
}

func runCreate(cmd *cobra.Command, dockerCli command.Cli, opts createOptions, args []string) error {
	ctx := cmd.Context()
	if opts.wait <= 0 {
		return fmt.Errorf("--wait-timeout %s: a duration above 0", opts.wait)
	}
	r, err := opts.services(cmd, dockerCli.In(), args)
	if err != nil {
		return err
	}
	for _, n := range r.Notices {
		fmt.Fprintf(dockerCli.Err(), "%s: %s\n", opts.file, n)
	}
	f, err := openFleet(cmd, dockerCli)
	if err != nil {
		return err
	}
	if len(r.Networks) > 0 {
		net, err := swarmstore.FindNetwork(ctx, f.Manager)
		if err != nil {
			return err
		}
		for _, n := range r.Networks {
			if n != net.Name {
				return fmt.Errorf("%s: network %q: fleet containers join the fleet network %q", opts.file, n, net.Name)
			}
		}
	}
	d := &deploy.Deployer{Fleet: f, Progress: dockerCli.Err()}
	co := deploy.CreateOptions{Builds: r.Builds, WaitTimeout: opts.wait, Networks: r.NetworkDefs, Files: r.Files, Copies: r.Copies}
	if r.Format == specfile.Compose && len(r.Services) > 0 {
		exists, err := d.ProjectExists(ctx, r.Services[0].Project)
		if err != nil {
			return err
		}
		if exists {
			res, err := d.Apply(ctx, r.Services, co, opts.orphans, opts.dryRun)
			if err != nil {
				return err
			}
			return writeFormatted(dockerCli.Out(), opts.format, res, func(out io.Writer) error { return renderApply(out, res) })
		}
	}
	if opts.orphans {
		return errors.New("--remove-orphans: applies a Compose file to a project that exists")
	}
	if opts.dryRun {
		p, err := d.DryRun(ctx, r.Services, co)
		if err != nil {
			return err
		}
		return writeFormatted(dockerCli.Out(), opts.format, p, func(out io.Writer) error { return renderPlan(out, p) })
	}
	made, err := d.Create(ctx, r.Services, co)
	if err != nil {
		return err
	}
	return writeFormatted(dockerCli.Out(), opts.format, made, func(out io.Writer) error { return renderContainers(out, made) })
}

// services builds the definitions from the file or the flags.
func (opts createOptions) services(cmd *cobra.Command, stdin io.Reader, args []string) (*specfile.Result, error) {
	if opts.file != "" {
		for _, fl := range []string{"name", "image", "replicas", "node", "constraint", "cpus", "cpuset-cpus", "memory", "memory-swap", "env", "publish", "volume", "checkpoint-every"} {
			if cmd.Flags().Changed(fl) {
				return nil, fmt.Errorf("--%s: give the service in the file or in flags, not both", fl)
			}
		}
		if len(args) > 0 {
			return nil, errors.New("a command after -- comes with flags, not with -f")
		}
		if opts.health.set(cmd.Flags()) {
			return nil, errors.New("--health-*: give the healthcheck in the file or in flags, not both")
		}
		return readFile(opts.file, stdin, opts.strategy, opts.project)
	}
	if opts.project != "" {
		return nil, errors.New("--project-name: names a Compose file's project (-f)")
	}
	s := spec.Service{
		Name: opts.name, Image: opts.image, Replicas: opts.replicas, Node: opts.node,
		Cores: opts.cpus, Cpuset: opts.cpusetCpus, Env: opts.env, Command: args, Strategy: opts.strategy,
	}
	s.SetConstraints(opts.constraint)
	switch {
	case opts.name == "":
		return nil, errors.New("--name: missing (or give a service file with -f)")
	case opts.image == "":
		return nil, errors.New("--image: missing")
	case opts.cpus < 0:
		return nil, fmt.Errorf("--cpus %d: a number of cores", opts.cpus)
	case opts.cpus > 0 && opts.cpusetCpus != "":
		return nil, errors.New("--cpus and --cpuset-cpus: give one or the other")
	}
	var err error
	if opts.memory != "" {
		if s.Memory, err = spec.ParseMemory("--memory", opts.memory); err != nil {
			return nil, err
		}
	}
	if opts.memorySwap != "" {
		if s.MemorySwap, err = spec.ParseMemorySwap("--memory-swap", opts.memorySwap); err != nil {
			return nil, err
		}
	}
	if s.Healthcheck, err = opts.health.apply(cmd.Flags(), nil); err != nil {
		return nil, err
	}
	if opts.checkpoint != "" {
		if s.CheckpointEvery, err = spec.ParseCheckpointEvery("--checkpoint-every", opts.checkpoint); err != nil {
			return nil, err
		}
	}
	for _, p := range opts.publish {
		port, err := spec.ParsePort(p)
		if err != nil {
			return nil, asFlag("--publish ", err)
		}
		s.Ports = append(s.Ports, port)
	}
	for _, v := range opts.volumes {
		vol, err := spec.ParseVolume(v)
		if err != nil {
			return nil, asFlag("--volume ", err)
		}
		s.Volumes = append(s.Volumes, vol)
	}
	if err := s.Validate(); err != nil {
		return nil, flagErrors(err)
	}
	return &specfile.Result{Services: []spec.Service{s}}, nil
}

// flagOf names the flag that sets each field of a definition.
var flagOf = map[string]string{
	"name": "--name", "image": "--image", "replicas": "--replicas", "cpus": "--cpus",
	"cpuset-cpus": "--cpuset-cpus", "memory": "--memory", "memory-swap": "--memory-swap",
	"strategy": "--strategy", "volumes": "--volume", "environment": "--env",
	"checkpoint-every": "--checkpoint-every", spec.ConstraintsField: "--constraint",
}

// flagErrors names the flag that sets each field at fault (Validate's
// spec.FieldErrors), in place of the field.
func flagErrors(err error) error {
	var out []error
	for _, e := range spec.Errors(err) {
		var fe *spec.FieldError
		if errors.As(e, &fe) && flagOf[fe.Field] != "" {
			e = &spec.FieldError{Field: flagOf[fe.Field], Err: fe.Err}
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// asFlag names the flag (with what follows it: "--publish ") in place of
// the field that a parse of its value names.
func asFlag(flag string, err error) error {
	var fe *spec.FieldError
	if errors.As(err, &fe) {
		err = fe.Err
	}
	return fmt.Errorf("%s%w", flag, err)
}

// readFile reads a service file; project names a Compose file's project.
func readFile(name string, stdin io.Reader, strategy, project string) (*specfile.Result, error) {
	var data []byte
	var err error
	dir := "."
	if name == "-" {
		data, err = io.ReadAll(io.LimitReader(stdin, 16<<20))
	} else {
		data, err = os.ReadFile(name)
		dir = filepath.Dir(name)
	}
	if err != nil {
		return nil, fmt.Errorf("-f %s: %w", name, err)
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	var opts []specfile.Option
	if project != "" {
		opts = append(opts, specfile.WithProject(project))
	}
	r, err := specfile.Parse(name, data, absDir, env, opts...)
	if err != nil {
		return nil, err
	}
	if project != "" && r.Format != specfile.Compose {
		return nil, fmt.Errorf("--project-name: names a Compose file's project, and %s is a %s", name, r.Format)
	}
	for i := range r.Services {
		if r.Services[i].Strategy == "" {
			r.Services[i].Strategy = strategy
		}
	}
	return r, nil
}
