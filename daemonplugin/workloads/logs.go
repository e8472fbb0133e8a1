package workloads

import (
	"context"
	"io"

	"github.com/docker-fleet/fleet/daemonplugin/logstore"
	"github.com/docker-fleet/fleet/shared/api"
)

// OpenLogs opens the live log of a fleet container of this node, as q bounds
// it (q.Kept aside), and says whether it has a terminal (one raw stream,
// logstore.Demux). A container not here is errdefs.ErrNotFound.
func (m *Manager) OpenLogs(ctx context.Context, name string, q api.LogsQuery) (r io.ReadCloser, tty bool, err error) {
	c, err := m.fleetInspect(ctx, name)
	if err != nil {
		return nil, false, err
	}
	r, err = logstore.OpenEngine(ctx, m.Engine, c.ID, q)
	return r, c.Config.Tty, err
}
