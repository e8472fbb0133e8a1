package pool

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/labels"
)

// fakeEngine keeps containers' labels and cpusets, and counts updates.
type fakeEngine struct {
	mu      sync.Mutex
	ctrs    map[string]*container.InspectResponse
	updates int
	fail    error // every update fails with it
}

func (f *fakeEngine) add(id, cpus string, lbl map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ctrs == nil {
		f.ctrs = map[string]*container.InspectResponse{}
	}
	f.ctrs[id] = &container.InspectResponse{ID: id, Name: "/" + id, State: &container.State{Status: container.StateRunning},
		Config: &container.Config{Labels: lbl}, HostConfig: &container.HostConfig{Resources: container.Resources{CpusetCpus: cpus}}}
}

func (f *fakeEngine) cpus(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ctrs[id].HostConfig.CpusetCpus
}

func (f *fakeEngine) ContainerList(context.Context, client.ContainerListOptions) (client.ContainerListResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out client.ContainerListResult
	for id := range f.ctrs {
		out.Items = append(out.Items, container.Summary{ID: id})
	}
	return out, nil
}

func (f *fakeEngine) ContainerInspect(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.ctrs[id]
	if !ok {
		return client.ContainerInspectResult{}, errdefs.ErrNotFound
	}
	return client.ContainerInspectResult{Container: *c}, nil
}

func (f *fakeEngine) ContainerUpdate(_ context.Context, id string, o client.ContainerUpdateOptions) (client.ContainerUpdateResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates++
	if f.fail != nil {
		return client.ContainerUpdateResult{}, f.fail
	}
	f.ctrs[id].HostConfig.CpusetCpus = o.Resources.CpusetCpus
	return client.ContainerUpdateResult{}, nil
}

func (f *fakeEngine) Events(context.Context, client.EventsListOptions) client.EventsResult {
	return client.EventsResult{}
}

var exclusive = map[string]string{labels.Service: "web", labels.Exclusive: "true"}

func newPool(t *testing.T, e *fakeEngine) *Pool {
	return &Pool{Engine: e, Cores: func() (cpuset.Set, error) { return cpuset.Of(0, 1, 2, 3), nil },
		File: filepath.Join(t.TempDir(), "pool.json")}
}

func TestConfinesAndGivesBack(t *testing.T) {
	ctx := context.Background()
	e := &fakeEngine{}
	e.add("plain", "", nil)
	e.add("pinned", "2-3", nil)
	e.add("shared.1", "", map[string]string{labels.Service: "shared", labels.Exclusive: "false"})
	e.add("web.1", "3", exclusive)
	p := newPool(t, e)

	assert.NilError(t, p.Reconcile(ctx))
	assert.Check(t, is.Equal(e.cpus("plain"), "0-2"))
	assert.Check(t, is.Equal(e.cpus("shared.1"), "0-2"))
	assert.Check(t, is.Equal(e.cpus("pinned"), "2"), "what it asked for, within the pool")
	assert.Check(t, is.Equal(e.cpus("web.1"), "3"))
	assert.Check(t, is.Equal(p.Shared().String(), "0-2"))
	want, ok := p.Wanted("pinned")
	assert.Check(t, ok)
	assert.Check(t, is.Equal(want, "2-3"))

	// A second exclusive container on core 2: pinned gets the whole pool.
	e.add("web.2", "2", exclusive)
	assert.NilError(t, p.Reconcile(ctx))
	assert.Check(t, is.Equal(e.cpus("plain"), "0-1"))
	assert.Check(t, is.Equal(e.cpus("pinned"), "0-1"))

	// An agent started anew remembers, and gives back when they go.
	e.mu.Lock()
	delete(e.ctrs, "web.1")
	delete(e.ctrs, "web.2")
	e.mu.Unlock()
	p = &Pool{Engine: e, Cores: p.Cores, File: p.File}
	assert.NilError(t, p.Reconcile(ctx))
	assert.Check(t, is.Equal(e.cpus("plain"), "0-3"))
	assert.Check(t, is.Equal(e.cpus("pinned"), "2-3"))
	_, ok = p.Wanted("pinned")
	assert.Check(t, !ok)

	// Nothing to change: no update.
	n := e.updates
	assert.NilError(t, p.Reconcile(ctx))
	assert.Check(t, is.Equal(e.updates, n))
}

func TestLeavesAloneWhatNeedsNoChange(t *testing.T) {
	e := &fakeEngine{}
	e.add("plain", "", nil)
	e.add("pinned", "1", nil)
	p := newPool(t, e)
	assert.NilError(t, p.Reconcile(context.Background()))
	assert.Check(t, is.Equal(e.updates, 0))
	assert.Check(t, is.Equal(e.cpus("plain"), ""))
}

func TestReleaseGivesEverythingBack(t *testing.T) {
	ctx := context.Background()
	e := &fakeEngine{}
	e.add("plain", "", nil)
	e.add("pinned", "1-2", nil)
	e.add("web.1", "1", exclusive)
	p := newPool(t, e)
	assert.NilError(t, p.Reconcile(ctx))
	assert.Check(t, is.Equal(e.cpus("pinned"), "2"))
	assert.NilError(t, p.Release(ctx))
	assert.Check(t, is.Equal(e.cpus("plain"), "0-3"))
	assert.Check(t, is.Equal(e.cpus("pinned"), "1-2"))
}

func TestHandChangeIsTheNewWant(t *testing.T) {
	ctx := context.Background()
	e := &fakeEngine{}
	e.add("plain", "", nil)
	e.add("web.1", "0", exclusive)
	p := newPool(t, e)
	assert.NilError(t, p.Reconcile(ctx))
	assert.Check(t, is.Equal(e.cpus("plain"), "1-3"))
	// docker update --cpuset-cpus 2 by hand: kept, and it is what it wants.
	e.mu.Lock()
	e.ctrs["plain"].HostConfig.CpusetCpus = "2"
	e.mu.Unlock()
	assert.NilError(t, p.Reconcile(ctx))
	assert.Check(t, is.Equal(e.cpus("plain"), "2"))
	_, narrowed := p.Wanted("plain")
	assert.Check(t, !narrowed)
}

func TestFailedUpdateKeepsTheRecord(t *testing.T) {
	ctx := context.Background()
	e := &fakeEngine{}
	e.add("pinned", "1-2", nil)
	e.add("web.1", "1", exclusive)
	p := newPool(t, e)
	assert.NilError(t, p.Reconcile(ctx))
	e.mu.Lock()
	delete(e.ctrs, "web.1")
	e.fail = errors.New("engine busy")
	e.mu.Unlock()
	assert.Check(t, p.Reconcile(ctx) != nil)
	want, ok := p.Wanted("pinned")
	assert.Check(t, ok, "the record survives a failed widen")
	assert.Check(t, is.Equal(want, "1-2"))
	e.mu.Lock()
	e.fail = nil
	e.mu.Unlock()
	assert.NilError(t, p.Reconcile(ctx))
	assert.Check(t, is.Equal(e.cpus("pinned"), "1-2"))
}
