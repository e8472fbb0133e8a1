package commands

import (
	"fmt"
	"path/filepath"

	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/config"
	"github.com/spf13/cobra"

	"github.com/docker-fleet/fleet/cliplugin/internal/dial"
	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/agentclient"
)

// directFlag is the root command's persistent flag that picks the transport.
const directFlag = "direct"

// addTransportFlags adds --direct to the root command.
func addTransportFlags(cmd *cobra.Command) {
	cmd.PersistentFlags().Bool(directFlag, false,
		"Reach the agents on their TCP port instead of through the manager's Docker API (remembered per docker context; --direct=false goes back)")
}

// openFleet opens the fleet of the current context and reaches its agents
// the way chosen for that context. Every command but init starts here.
func openFleet(cmd *cobra.Command, dockerCli command.Cli) (*fleet.Fleet, error) {
	ctx := cmd.Context()
	t, err := agentTransport(cmd, dockerCli)
	if err != nil {
		return nil, err
	}
	f, err := fleet.Open(ctx, dockerCli.Client())
	if err != nil {
		return nil, dial.EngineError(dockerCli.CurrentContext(), err)
	}
	if t == dial.ViaRelay {
		r := relay(dockerCli)
		if err := r.Check(ctx); err != nil {
			return nil, err
		}
		f.Dial = r.Dial
		f.ConnsPerAgent = dial.ConnsPerAgent
	}
	return f, nil
}

// agentDialer is how init reaches the agents: it makes the relay itself, so
// it checks nothing first.
func agentDialer(cmd *cobra.Command, dockerCli command.Cli) (agentclient.DialFunc, error) {
	t, err := agentTransport(cmd, dockerCli)
	if err != nil || t == dial.Direct {
		return nil, err
	}
	return relay(dockerCli).Dial, nil
}

func relay(dockerCli command.Cli) *dial.Relay {
	return &dial.Relay{Engine: dockerCli.Client(), Context: dockerCli.CurrentContext()}
}

// agentTransport is --direct when given (and then remembered for the
// current context), else what the context remembers, else the relay.
func agentTransport(cmd *cobra.Command, dockerCli command.Cli) (dial.Transport, error) {
	dir := config.Dir()
	if f := dockerCli.ConfigFile(); f != nil && f.Filename != "" {
		dir = filepath.Dir(f.Filename)
	}
	name := dockerCli.CurrentContext()
	saved, err := dial.LoadTransport(dir, name)
	if !cmd.Flags().Changed(directFlag) {
		return saved, err
	}
	direct, ferr := cmd.Flags().GetBool(directFlag)
	if ferr != nil {
		return "", ferr
	}
	want := dial.ViaRelay
	if direct {
		want = dial.Direct
	}
	if err == nil && want == saved {
		return want, nil
	}
	if err := dial.SaveTransport(dir, name, want); err != nil {
		return "", fmt.Errorf("--%s: remembering the choice: %w", directFlag, err)
	}
	if want == dial.Direct {
		fmt.Fprintf(dockerCli.Err(), "docker context %q: agents are reached on their own port from now on (--direct=false goes back to the relay)\n", name)
	} else {
		fmt.Fprintf(dockerCli.Err(), "docker context %q: agents are reached through the manager's Docker API from now on\n", name)
	}
	return want, nil
}
