package migrate

import (
	"context"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/daemonplugin/journal"
	"github.com/docker-fleet/fleet/shared/api"
)

// TestDrainWaitsForWorkInFlight: a drained node refuses new migrations as
// unavailable, says what it still has in flight (driven here, prepared
// here, a background checkpoint) and is idle once that ends; a drain of 0
// ends it.
func TestDrainWaitsForWorkInFlight(t *testing.T) {
	ctx := context.Background()
	jr, err := journal.Open(t.TempDir())
	assert.NilError(t, err)
	m := &Migrator{Node: "h1", Journal: jr}

	done, err := m.begin("0a1b2c3d4e5f", "web.1")
	assert.NilError(t, err)
	busy := m.Drain(ctx, time.Minute, 300*time.Millisecond)
	assert.Check(t, is.Contains(busy, "web.1"))
	assert.Check(t, errdefs.IsUnavailable(m.Accepting()), "%v", m.Accepting())
	_, err = m.begin("1a1b2c3d4e5f", "db.1")
	assert.Check(t, errdefs.IsUnavailable(err), "%v", err)
	_, err = m.Expect(ctx, api.Expectation{ID: "2a1b2c3d4e5f", From: "h2", Container: "db.1", Network: "fleet"})
	assert.Check(t, errdefs.IsUnavailable(err), "%v", err)
	_, ok := m.startCheckpoint("db.1")
	assert.Check(t, !ok, "no background checkpoint while drained")

	// The migration ends while the drain waits.
	go func() { time.Sleep(300 * time.Millisecond); done() }()
	assert.Check(t, is.Equal(m.Drain(ctx, time.Minute, 5*time.Second), ""))

	// A prepared migration and a checkpoint are in flight too.
	m.Drain(ctx, 0, 0)
	assert.NilError(t, m.Accepting())
	_, err = m.Expect(ctx, api.Expectation{ID: "3a1b2c3d4e5f", From: "h2", Container: "db.1", Network: "fleet"})
	assert.NilError(t, err)
	m.prepared("3a1b2c3d4e5f", api.PrepareRequest{Files: 1}, false)
	assert.Check(t, is.Contains(m.Drain(ctx, time.Minute, 0), "db.1 from h2 (prepared)"))
	m.Drain(ctx, 0, 0)
	_, _ = m.claim("3a1b2c3d4e5f", "h2", true)
	end, ok := m.startCheckpoint("cache.1")
	assert.Assert(t, ok)
	assert.Check(t, is.Contains(m.Drain(ctx, time.Minute, 0), "checkpoint of cache.1"))
	end()
	assert.Check(t, is.Equal(m.Drain(ctx, time.Minute, 0), ""))

	// The drain ends on its own.
	m.Drain(ctx, 50*time.Millisecond, 0)
	time.Sleep(100 * time.Millisecond)
	assert.NilError(t, m.Accepting())
}
