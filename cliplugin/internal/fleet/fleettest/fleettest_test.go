package fleettest

import (
	"context"
	"errors"
	"testing"

	"github.com/containerd/errdefs"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/spec"
)

func create(name string, replica int, s spec.Service) api.CreateRequest {
	return api.CreateRequest{Name: name, Replica: replica, Service: s}
}

func TestCreateBooksAsTheAgentDoes(t *testing.T) {
	ctx := context.Background()
	n := NewNode("h1", 4, 256<<20)
	web := spec.Service{Name: "web", Image: "app", Cores: 3, Memory: 128 << 20,
		Ports: []spec.Port{{Host: 8080, Container: 80, Protocol: "tcp"}}}

	c, err := n.Create(ctx, create("web.1", 1, web))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(c.Cpuset, "0-2"))
	assert.Check(t, c.Exclusive)

	_, err = n.Create(ctx, create("web.1", 1, web))
	assert.Check(t, errdefs.IsConflict(err), "the name is taken")
	_, err = n.Create(ctx, create("web.2", 2, web))
	assert.Check(t, errdefs.IsConflict(err), "one core is free")
	assert.Check(t, is.ErrorContains(err, "node h1 has 1 of 4 cores free, 3 asked"))
	one := web
	one.Cores, one.Ports = 1, nil
	one.Memory = 200 << 20
	_, err = n.Create(ctx, create("web.2", 2, one))
	assert.Check(t, errdefs.IsConflict(err), "the memory is reserved")
	one.Memory, one.Ports = 0, web.Ports
	_, err = n.Create(ctx, create("web.2", 2, one))
	assert.Check(t, errdefs.IsConflict(err), "the host port is taken")
	one.Cpuset, one.Cores, one.Ports = "1", 0, nil
	_, err = n.Create(ctx, create("web.2", 2, one))
	assert.Check(t, is.ErrorContains(err, "core 1 of node h1 is held by web.1"))

	l, err := n.Ledger(ctx)
	assert.NilError(t, err)
	assert.Check(t, is.Len(l.Held, 3), "a refusal books nothing")
	assert.Check(t, is.Equal(l.MemReserved, int64(128<<20)))
	assert.Check(t, is.Len(l.Ports, 1))

	assert.NilError(t, n.Remove(ctx, "web.1"))
	assert.Check(t, errdefs.IsNotFound(n.Remove(ctx, "web.1")))
	_, err = n.Detail(ctx, "web.1")
	assert.Check(t, errdefs.IsNotFound(err))
	l, err = n.Ledger(ctx)
	assert.NilError(t, err)
	assert.Check(t, is.Len(l.Held, 0))
	assert.Check(t, is.Len(l.Ports, 0))
}

func TestFailTheNthCall(t *testing.T) {
	ctx := context.Background()
	n := NewNode("h1", 2, 0)
	boom := errors.New("boom")
	n.Fail("Ledger", 2, boom)
	_, err := n.Ledger(ctx)
	assert.NilError(t, err)
	_, err = n.Ledger(ctx)
	assert.Check(t, is.ErrorIs(err, boom))
	_, err = n.Ledger(ctx)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(n.Calls("Ledger"), 3))

	n.SetDown(errdefs.ErrUnavailable)
	_, err = n.Info(ctx)
	assert.Check(t, errdefs.IsUnavailable(err))
	f := New(n)
	inv, err := f.Inventory(ctx)
	assert.NilError(t, err)
	assert.Check(t, errdefs.IsUnavailable(inv.Unreachable()))
}

func TestPromoteAndResize(t *testing.T) {
	ctx := context.Background()
	n := NewNode("h1", 4, 0)
	web := spec.Service{Name: "web", Image: "app", Cores: 1}
	_, err := n.Create(ctx, create("web.1", 1, web))
	assert.NilError(t, err)
	succ := create("web.1-r1", 1, web)
	succ.Successor = "web.1"
	_, err = n.Create(ctx, succ)
	assert.NilError(t, err)

	_, err = n.Promote(ctx, "web.1-r1", api.PromoteRequest{})
	assert.Check(t, errdefs.IsConflict(err), "the replica is still there")
	assert.NilError(t, n.Retire(ctx, "web.1"))
	c, err := n.Promote(ctx, "web.1-r1", api.PromoteRequest{})
	assert.NilError(t, err)
	assert.Check(t, is.Equal(c.Name, "web.1"))
	assert.Check(t, is.Equal(c.Cpuset, "1"))

	cores := 2
	c, err = n.Resize(ctx, "web.1", api.ResizeRequest{Cores: &cores})
	assert.NilError(t, err)
	assert.Check(t, is.Equal(c.Cpuset, "0-1"), "its own core kept, the lowest free added")
	n.Pin("other", cpuset.Of(2, 3))
	cores = 3
	_, err = n.Resize(ctx, "web.1", api.ResizeRequest{Cores: &cores})
	assert.Check(t, errdefs.IsConflict(err))
	got, _ := n.Container("web.1")
	assert.Check(t, is.Equal(got.Cpuset, "0-1"), "a refusal changes nothing")
}

func TestNoSuchMethod(t *testing.T) {
	defer func() { assert.Check(t, recover() != nil) }()
	NewNode("h1", 1, 0).Fail("Crate", 1, errors.New("typo"))
}
