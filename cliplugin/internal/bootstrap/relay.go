package bootstrap

import (
	"context"
	"fmt"
	"time"

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

// relayRetireWait bounds how long init waits, at its end, for the
// connections through a relay it replaced to end.
const relayRetireWait = time.Minute

// retireRelays removes the relays this init (or an earlier one) replaced,
// once the connections through them ended.
func (in *initializer) retireRelays(ctx context.Context) {
	if left := dial.RetireRelays(ctx, in.manager.Client, relayRetireWait); left > 0 {
		in.say("the relay this init replaced still carries a connection (a migration's, another command's): the next init removes it")
	}
}
