package bootstrap

import (
	"context"
	"fmt"

	"github.com/docker-fleet/fleet/cliplugin/internal/dial"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// ensureRelay makes the manager run the fleet's relay, through which the CLI
// reaches the agents over the docker context alone. It comes before any
// agent is asked anything, init's own waits included, and on the manager
// whether or not it runs fleet containers. The relay may dial the port this
// init sets and any port a node's agent still listens on.
func (in *initializer) ensureRelay(ctx context.Context) error {
	nodes, err := swarmstore.Nodes(ctx, in.manager.Client)
	if err != nil {
		return err
	}
	ports := []int{in.opts.AgentPort}
	for _, n := range nodes {
		if n.AgentPort != 0 {
			ports = append(ports, n.AgentPort)
		}
	}
	res, err := dial.EnsureRelay(ctx, in.manager.Client, ports)
	if err != nil {
		return fmt.Errorf("manager (docker context %q): the fleet's relay: %w", in.manager.Context, err)
	}
	if res != dial.RelayUnchanged {
		in.say("fleet relay %s on the manager", res)
	}
	return nil
}
