package scheduler

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/spec"
)

func nodes() []Node {
	two := cpuset.Of(0, 1)
	return []Node{
		{Name: "h1", Cores: two, Free: two, MemFree: 1 << 30},
		{Name: "h2", Cores: two, Free: cpuset.Of(1), MemFree: 1 << 30, Containers: 1},
		{Name: "h3", Cores: two, Free: two, MemFree: 1 << 30},
	}
}

func TestSpread(t *testing.T) {
	got, err := Place(nodes(), Request{Cores: 1, Memory: 64 << 20}, 3)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(got, []string{"h1", "h3", "h2"}), "after h1 and h3 all have one core free; h2 has the most memory")
}

func TestSpreadFillsEveryCoreThenSaysWhy(t *testing.T) {
	ns := nodes()
	got, err := Place(ns, Request{Cores: 1}, 5)
	assert.NilError(t, err)
	assert.Check(t, is.Len(got, 5))
	_, err = Place(ns, Request{Cores: 1}, 1)
	assert.Check(t, is.ErrorContains(err, "h1: 0 of 2 cores free, 1 needed"))
	assert.Check(t, is.ErrorContains(err, "h3: 0 of 2 cores free"))
}

func TestBinpack(t *testing.T) {
	got, err := Place(nodes(), Request{Cores: 1, Strategy: spec.Binpack}, 3)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(got, []string{"h2", "h1", "h1"}))
}

func TestNodeAndCpuset(t *testing.T) {
	got, err := Place(nodes(), Request{Cpuset: cpuset.Of(0), Node: "h3"}, 1)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(got, []string{"h3"}))

	// Core 0 is free on h1 and h3 only; a third replica has nowhere to go.
	_, err = Place(nodes(), Request{Cpuset: cpuset.Of(0)}, 3)
	assert.Check(t, is.ErrorContains(err, "h2: core 0 already held"))

	_, err = Place(nodes(), Request{Cpuset: cpuset.Of(5)}, 1)
	assert.Check(t, is.ErrorContains(err, "h1: has no core 5 (cores 0-1)"))

	_, err = Place(nodes(), Request{Node: "h2", Cores: 2}, 1)
	assert.Check(t, is.ErrorContains(err, "h2: 1 of 2 cores free, 2 needed"))
	assert.Check(t, is.ErrorContains(err, "h1: not the node asked for (h2)"))
}

func TestMemoryAndUnusable(t *testing.T) {
	ns := nodes()
	ns[0].Unusable = "agent unreachable"
	_, err := Place(ns, Request{Memory: 2 << 30}, 1)
	assert.Check(t, is.ErrorContains(err, "h1: agent unreachable"))
	assert.Check(t, is.ErrorContains(err, "h2: 1GiB of memory free, 2GiB needed"))
}

func TestRemoveBusiestFirst(t *testing.T) {
	ns := []Node{{Name: "h1", Containers: 3}, {Name: "h2", Containers: 1}}
	reps := []Replica{{"web.1", "h1", 1}, {"web.2", "h2", 2}, {"web.3", "h1", 3}, {"web.4", "h1", 4}}
	got := Remove(ns, reps, 3)
	var names []string
	for _, r := range got {
		names = append(names, r.Name)
	}
	// h1 is busiest (3): web.4, then h1 at 2 vs h2 at 1: web.3, then h1 and h2
	// both at 1: the higher number, web.2.
	assert.Check(t, is.DeepEqual(names, []string{"web.4", "web.3", "web.2"}))
	assert.Check(t, is.Len(Remove(ns, reps, 10), 4))
}
