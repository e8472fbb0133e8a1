package commands

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/command/completion"
	"github.com/spf13/cobra"

	"github.com/docker-fleet/fleet/cliplugin/internal/describe"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// Shell completion. Docker completes a plugin's commands by running it as
// `docker-fleet __complete fleet …` (docker __complete delegates to it),
// which calls these. They name what the fleet has: nodes and stored
// services from the manager's engine alone, containers from the agents'
// ledgers. Completion must be quick and quiet: what cannot be read in
// completionTimeout, or at all, is simply not offered.

// completionTimeout bounds what one completion may wait for.
const completionTimeout = 3 * time.Second

// nameKinds says which names a completion needs read.
type nameKinds uint8

const (
	kindNodes nameKinds = 1 << iota
	kindServices
	kindProjects
	kindContainers
)

// fleetNames is what there is to complete in the fleet.
type fleetNames struct {
	nodes      []string
	services   []string
	projects   []string
	containers []api.FleetContainer
}

// loadNames reads the names of the kinds asked for; a kind that cannot be
// read is left empty.
func loadNames(cmd *cobra.Command, dockerCli command.Cli, kinds nameKinds) fleetNames {
	var names fleetNames
	if dockerCli == nil || kinds == 0 {
		return names
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	defer cancel()
	manager := dockerCli.Client()
	if kinds&kindNodes != 0 {
		if nodes, err := swarmstore.Nodes(ctx, manager); err == nil {
			for _, n := range nodes {
				names.nodes = append(names.nodes, n.Hostname)
			}
		}
	}
	if kinds&(kindServices|kindProjects) != 0 {
		if svcs, err := swarmstore.ListServices(ctx, manager); err == nil {
			for _, s := range svcs {
				names.services = append(names.services, s.Name)
				if s.Project != "" {
					names.projects = append(names.projects, s.Project)
				}
			}
		}
	}
	if kinds&kindContainers != 0 {
		// Only containers need the agents (and so the fleet's transport,
		// which openFleet picks and checks with the command's context).
		prev := cmd.Context()
		cmd.SetContext(ctx)
		defer cmd.SetContext(prev)
		if f, err := openFleet(cmd, dockerCli); err == nil {
			if inv, err := f.Inventory(ctx); err == nil {
				for _, n := range inv {
					names.containers = append(names.containers, n.Ledger.Containers...)
				}
			}
		}
	}
	return names
}

// matching is the names that start with prefix, but for those in given,
// sorted, each once.
func matching(names []string, prefix string, given []string) []string {
	var out []string
	for _, n := range names {
		if n != "" && strings.HasPrefix(n, prefix) && !slices.Contains(given, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// containerNames names the containers, only the running ones if running.
func containerNames(cs []api.FleetContainer, running bool) []string {
	var out []string
	for _, c := range cs {
		if !running || c.State == "running" {
			out = append(out, c.Name)
		}
	}
	return out
}

// completeFrom completes arguments (or a flag's value) with the names pick
// takes from the fleet, leaving out the arguments already given.
func completeFrom(dockerCli command.Cli, kinds nameKinds, pick func(fleetNames) []string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return matching(pick(loadNames(cmd, dockerCli, kinds)), toComplete, args), cobra.ShellCompDirectiveNoFileComp
	}
}

// upTo offers fn's completions for the first n arguments, none after.
func upTo(n int, fn cobra.CompletionFunc) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) >= n {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return fn(cmd, args, toComplete)
	}
}

// completeNodes completes the fleet's nodes by hostname.
func completeNodes(dockerCli command.Cli) cobra.CompletionFunc {
	return completeFrom(dockerCli, kindNodes, func(n fleetNames) []string { return n.nodes })
}

// completeServices completes the stored services.
func completeServices(dockerCli command.Cli) cobra.CompletionFunc {
	return completeFrom(dockerCli, kindServices, func(n fleetNames) []string { return n.services })
}

// completeProjects completes the Compose projects of the stored services.
func completeProjects(dockerCli command.Cli) cobra.CompletionFunc {
	return completeFrom(dockerCli, kindProjects, func(n fleetNames) []string { return n.projects })
}

// completeRunningContainers completes the containers that run (what
// migrate takes).
func completeRunningContainers(dockerCli command.Cli) cobra.CompletionFunc {
	return completeFrom(dockerCli, kindContainers, func(n fleetNames) []string { return containerNames(n.containers, true) })
}

// completeMigrate completes migrate's CONTAINER: one that runs, unless
// --follow (which takes none).
func completeMigrate(dockerCli command.Cli) cobra.CompletionFunc {
	running := upTo(1, completeRunningContainers(dockerCli))
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if cmd.Flags().Changed("follow") {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return running(cmd, args, toComplete)
	}
}

// completeContainersOrServices completes containers (every state) and
// services, for the commands that take either (rm, resize, logs). Wrap it
// in upTo(1, …) for a command that takes one.
func completeContainersOrServices(dockerCli command.Cli) cobra.CompletionFunc {
	return completeFrom(dockerCli, kindServices|kindContainers, func(n fleetNames) []string {
		return append(slices.Clone(n.services), containerNames(n.containers, false)...)
	})
}

// completeTargets completes nodes, services and containers (describe's).
func completeTargets(dockerCli command.Cli) cobra.CompletionFunc {
	return completeFrom(dockerCli, kindNodes|kindServices|kindContainers, func(n fleetNames) []string {
		return append(append(slices.Clone(n.nodes), n.services...), containerNames(n.containers, false)...)
	})
}

// completeFiles completes a file's path (-f), as the shell does.
func completeFiles() cobra.CompletionFunc { return completion.FileNames() }

// completeScale completes scale's SERVICE=N arguments.
func completeScale(dockerCli command.Cli) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if strings.Contains(toComplete, "=") {
			return scaleCompletions(nil, args, toComplete)
		}
		return scaleCompletions(loadNames(cmd, dockerCli, kindServices).services, args, toComplete)
	}
}

// scaleCompletions offers "SERVICE=" for the services not given yet, with
// no space after (the count follows); once the "=" is typed, nothing (a
// count is not guessed).
func scaleCompletions(services, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if strings.Contains(toComplete, "=") {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var given []string
	for _, a := range args {
		name, _, _ := strings.Cut(a, "=")
		given = append(given, name)
	}
	out := matching(services, toComplete, given)
	for i := range out {
		out[i] += "="
	}
	return out, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
}

// completePsFilter completes ps's --filter KEY=VALUE.
func completePsFilter(dockerCli command.Cli) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		key, _, _ := strings.Cut(toComplete, "=")
		var kinds nameKinds
		if strings.Contains(toComplete, "=") {
			kinds = map[string]nameKinds{"node": kindNodes, "service": kindServices, "project": kindProjects}[key]
		}
		return psFilterCompletions(loadNames(cmd, dockerCli, kinds), toComplete)
	}
}

// psFilterCompletions offers the keys ("node=", with no space after) until
// one is typed, then its values ("node=h2").
func psFilterCompletions(names fleetNames, toComplete string) ([]string, cobra.ShellCompDirective) {
	key, value, ok := strings.Cut(toComplete, "=")
	if !ok {
		var keys []string
		for _, k := range describe.PSFilterKeys {
			keys = append(keys, k+"=")
		}
		return matching(keys, toComplete, nil), cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
	}
	var values []string
	switch key {
	case "node":
		values = names.nodes
	case "service":
		values = names.services
	case "project":
		values = names.projects
	case "state":
		values = describe.ContainerStates
	}
	out := matching(values, value, nil)
	for i := range out {
		out[i] = key + "=" + out[i]
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
