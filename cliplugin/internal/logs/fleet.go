package logs

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/containerd/errdefs"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/agentclient"
	"github.com/docker-fleet/fleet/shared/api"
)

// logsAPI is the first agent API with the logs routes (api.LogsSuffix).
const logsAPI = 5

// Fleet is the Source of a fleet: its agents, found through the manager.
type Fleet struct {
	Fleet *fleet.Fleet

	mu  sync.Mutex
	inv fleet.Inventory // the last one Locate read
}

// Locate reads every node's ledger for the container's copies.
func (s *Fleet) Locate(ctx context.Context, name string) ([]Copy, error, error) {
	inv, err := s.Fleet.Inventory(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, n := range inv {
		if c, ok := n.Agent.(fleet.IdleCloser); ok {
			// Only the nodes are kept: logs are read on clients of their
			// own (Live).
			c.CloseIdleConnections()
		}
	}
	s.mu.Lock()
	s.inv = inv
	s.mu.Unlock()
	var copies []Copy
	for _, n := range inv {
		for _, c := range n.Ledger.Containers {
			if c.Name == name {
				copies = append(copies, Copy{Node: n.Hostname, State: c.State})
			}
		}
	}
	return copies, inv.Unreachable(), nil
}

func (s *Fleet) nodes() fleet.Inventory {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inv
}

// Kept asks every node that answered Locate for its kept parts.
func (s *Fleet) Kept(ctx context.Context, name string, q api.LogsQuery) ([]api.LogLine, error) {
	inv := s.nodes()
	parts := make([][]api.LogLine, len(inv))
	errs := make([]error, len(inv))
	var wg sync.WaitGroup
	for i, n := range inv {
		if n.Err != nil {
			errs[i] = fmt.Errorf("node %s: %w", n.Hostname, n.Err)
			continue
		}
		wg.Go(func() {
			parts[i], errs[i] = readAll(ctx, s, n.Hostname, name, q)
			if errdefs.IsNotFound(errs[i]) {
				// An agent older than kept logs, which has none.
				errs[i] = nil
			} else if errs[i] != nil {
				errs[i] = fmt.Errorf("node %s: %w", n.Hostname, errs[i])
			}
		})
	}
	wg.Wait()
	var out []api.LogLine
	for _, p := range parts {
		out = append(out, p...)
	}
	return out, errors.Join(errs...)
}

// Live opens the log on node (q.Kept: its kept parts), on a client of its
// own: through the relay a client has one connection to an agent, which a
// followed log holds for as long as it lasts.
func (s *Fleet) Live(ctx context.Context, node, name string, q api.LogsQuery) (Stream, error) {
	n := s.nodes().ByName(node)
	if n == nil || n.Err != nil {
		return nil, errdefs.ErrNotFound.WithMessage(fmt.Sprintf("no container %s on node %s", name, node))
	}
	c, err := s.Fleet.Agent(n.Node)
	if err != nil {
		return nil, err
	}
	st, err := c.Logs(ctx, name, q)
	if errdefs.IsNotFound(err) && !q.Kept {
		// The agent's own "no container", or an agent that has no such
		// route: its API says which.
		if info, ierr := c.Info(ctx); ierr == nil && info.API() < logsAPI {
			err = errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf(
				"the agent of %s (%s, API %d) cannot show logs: upgrade it with docker fleet init", node, info.AgentVersion, info.API()))
		}
	}
	if err != nil {
		c.CloseIdleConnections()
		return nil, err
	}
	return &clientStream{LogStream: st, c: c}, nil
}

// clientStream is a stream that closes its client's connection with it.
type clientStream struct {
	*agentclient.LogStream
	c *agentclient.Client
}

func (s *clientStream) Close() error {
	err := s.LogStream.Close()
	s.c.CloseIdleConnections()
	return err
}

var (
	_ Source = (*Fleet)(nil)
	_ Stream = (*agentclient.LogStream)(nil)
)
