// Package fleet is the fleet as the CLI finds it in the manager's swarm: the
// CA and credentials, the overlay network, the nodes and their agents.
package fleet

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/agentclient"
	"github.com/docker-fleet/fleet/shared/pki"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// Fleet is a connection to a fleet through its manager engine.
type Fleet struct {
	Manager client.APIClient
	CA      *pki.CA
	Created time.Time
	// Dial reaches the agents (nil: TCP to each node's agent port).
	Dial agentclient.DialFunc
	// CertDir caches the CLI's certificate (default: under the docker
	// config directory).
	CertDir string
	// ConnsPerAgent bounds the connections open to one agent (0: none).
	ConnsPerAgent int

	credsOnce sync.Once
	creds     pki.Pair
	credsErr  error
}

// Open finds the fleet kept in the manager engine's swarm.
func Open(ctx context.Context, manager client.APIClient) (*Fleet, error) {
	ca, created, err := LoadCA(ctx, manager)
	if err != nil {
		return nil, err
	}
	return &Fleet{Manager: manager, CA: ca, Created: created}, nil
}

// Agent returns a new client for the node's agent, with connections of
// its own: the concrete client, for callers that need more than the Agent
// calls (init waits on it, logs reads each stream on one).
func (f *Fleet) Agent(n swarmstore.Node) (*agentclient.Client, error) {
	if n.AgentPort == 0 {
		return nil, fmt.Errorf("node %s has no fleet agent: run `docker fleet init` again", n.Hostname)
	}
	creds, err := f.Credentials()
	if err != nil {
		return nil, err
	}
	c, err := agentclient.New(creds, n.Hostname, n.Addr, n.AgentPort, f.Dial)
	if err == nil && f.ConnsPerAgent > 0 {
		c.LimitConns(f.ConnsPerAgent)
	}
	return c, err
}
