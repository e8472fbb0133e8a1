package ledger

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/cpuset"
)

func book() *Book {
	return New("h1", cpuset.Of(0, 1, 2, 3), []Pinned{
		{Name: "web.1", Cpuset: cpuset.Of(0), Fleet: true, Exclusive: true},
		{Name: "shared.1", Cpuset: cpuset.Of(0, 1, 2, 3), Fleet: true}, // not exclusive
		{Name: "outsider", Cpuset: cpuset.Of(3)},                       // pinned by hand
		{Name: "anywhere", Cpuset: cpuset.Of(0, 1, 2, 3)},              // runs anywhere
	})
}

func TestHolds(t *testing.T) {
	h := book().Holds()
	assert.Assert(t, is.Len(h, 2))
	assert.Check(t, is.Equal(h[0].Container, "web.1"))
	assert.Check(t, h[0].Fleet)
	assert.Check(t, is.Equal(h[1].Container, "outsider"))
	assert.Check(t, !h[1].Fleet)
}

func TestTake(t *testing.T) {
	b := book()
	got, err := b.Take(2, "api.1")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(got.String(), "1-2"))
	_, err = b.Take(1, "api.2")
	assert.Check(t, is.ErrorContains(err, "node h1 has 0 of 4 cores free, 1 asked"))
	// A resize keeps the cores it holds.
	got, err = b.Take(1, "web.1")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(got.String(), "0"))
}

func TestTakeGrowKeepsOwnCores(t *testing.T) {
	b := New("h1", cpuset.Of(0, 1, 2, 3), []Pinned{{Name: "web.1", Cpuset: cpuset.Of(2), Fleet: true, Exclusive: true}})
	got, err := b.Take(2, "web.1")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(got.String(), "0,2"))
	assert.Check(t, is.Len(b.Holds(), 2))
}

func TestClaim(t *testing.T) {
	b := book()
	assert.Check(t, is.ErrorContains(b.Claim(cpuset.Of(0), "api.1"), "core 0 of node h1 is held by web.1"))
	assert.Check(t, is.ErrorContains(b.Claim(cpuset.Of(3), "api.1"), "held by outsider (outside the fleet)"))
	assert.Check(t, is.ErrorContains(b.Claim(cpuset.Of(9), "api.1"), "core 9 does not exist on node h1 (cores 0-3)"))
	assert.NilError(t, b.Claim(cpuset.Of(1, 2), "api.1"))
	// Moving web.1 to core 1 now fails, to its own core 0 works.
	assert.Check(t, is.ErrorContains(b.Claim(cpuset.Of(1), "web.1"), "held by api.1"))
	assert.NilError(t, b.Claim(cpuset.Of(0), "web.1"))
}

func TestKeepsOneCoreShared(t *testing.T) {
	b := New("h1", cpuset.Of(0, 1), []Pinned{{Name: "web.1", Cpuset: cpuset.Of(0), Fleet: true, Exclusive: true}})
	_, err := b.Take(1, "api.1")
	assert.Check(t, is.ErrorContains(err, "node h1 must keep 1 of its 2 cores shared with the containers that hold none: 0 more can be held exclusively, 1 asked"))
	assert.Check(t, is.ErrorContains(b.Claim(cpuset.Of(1), "api.1"), "must keep 1 of its 2 cores shared"))
	// Its own core moves: web.1 may go from core 0 to core 1.
	assert.NilError(t, b.Claim(cpuset.Of(1), "web.1"))
	// Nor may one container take them all.
	_, err = New("h1", cpuset.Of(0, 1), nil).Take(2, "big.1")
	assert.Check(t, is.ErrorContains(err, "1 more can be held exclusively, 2 asked"))
	// A core pinned by hand outside the fleet is shared, not exclusive.
	b = New("h1", cpuset.Of(0, 1), []Pinned{{Name: "outsider", Cpuset: cpuset.Of(0)}})
	got, err := b.Take(1, "api.1")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(got.String(), "1"))
}

func TestFleetHoldsComeFirst(t *testing.T) {
	// Listed newest first, a container pinned by hand onto web.1's core
	// after it does not take the core from it.
	b := New("h1", cpuset.Of(0, 1, 2), []Pinned{
		{Name: "outsider", Cpuset: cpuset.Of(0, 1)},
		{Name: "web.1", Cpuset: cpuset.Of(0), Fleet: true, Exclusive: true},
	})
	assert.NilError(t, b.Claim(cpuset.Of(0), "web.1"))
	h := b.Holds()
	assert.Check(t, is.Equal(h[0].Container, "web.1"))
}
