// Package ledger is a node's core ledger: which of its cores are held, and by
// whom. The agent rebuilds it from the engine's containers under a lock for
// every change, so it cannot drift from what the engine really runs and two
// requests cannot take the same core.
package ledger

import (
	"cmp"
	"fmt"
	"slices"
	"sort"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
)

// Pinned is a container with a cpuset.
type Pinned struct {
	Name   string
	Cpuset cpuset.Set
	// Fleet containers hold their cores only when Exclusive; any other
	// pinned container holds its cores too, so the fleet never promises a
	// core that someone else runs on.
	Fleet     bool
	Exclusive bool
}

// Book is the ledger of one node.
type Book struct {
	Node  string
	cores cpuset.Set
	held  map[int]api.Hold
}

// New builds the ledger of a node with these cores from its containers.
func New(node string, cores cpuset.Set, pinned []Pinned) *Book {
	b := &Book{Node: node, cores: cores, held: map[int]api.Hold{}}
	// The fleet's exclusive holds first: a container pinned by hand onto
	// one of their cores (the guard off) does not take it from them.
	pinned = slices.Clone(pinned)
	slices.SortStableFunc(pinned, func(x, y Pinned) int {
		return -cmp.Compare(b2i(x.Fleet && x.Exclusive), b2i(y.Fleet && y.Exclusive))
	})
	for _, p := range pinned {
		if p.Fleet && !p.Exclusive {
			continue
		}
		// A container outside the fleet that may run anywhere holds nothing.
		if !p.Fleet && len(cores.Minus(p.Cpuset)) == 0 {
			continue
		}
		for _, c := range p.Cpuset {
			if _, taken := b.held[c]; !taken {
				b.held[c] = api.Hold{Core: c, Container: p.Name, Fleet: p.Fleet}
			}
		}
	}
	return b
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Cores are the node's cores.
func (b *Book) Cores() cpuset.Set { return b.cores }

// Holds lists the held cores in order.
func (b *Book) Holds() []api.Hold {
	out := make([]api.Hold, 0, len(b.held))
	for _, h := range b.held {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Core < out[j].Core })
	return out
}

// freeFor is the cores nobody holds, plus those owner holds already.
func (b *Book) freeFor(owner string) cpuset.Set {
	var out cpuset.Set
	for _, c := range b.cores {
		if h, taken := b.held[c]; !taken || (owner != "" && h.Container == owner) {
			out = append(out, c)
		}
	}
	return out
}

// Take picks n cores for owner: those it holds already first (a resize keeps
// what it can), then the lowest free ones.
func (b *Book) Take(n int, owner string) (cpuset.Set, error) {
	free := b.freeFor(owner)
	if len(free) < n {
		return nil, fmt.Errorf("node %s has %d of %d cores free, %d asked", b.Node, len(free), len(b.cores), n)
	}
	var mine, others cpuset.Set
	for _, c := range free {
		if h, ok := b.held[c]; ok && h.Container == owner {
			mine = append(mine, c)
		} else {
			others = append(others, c)
		}
	}
	picked := append(mine, others...)[:n]
	set := cpuset.Of(picked...)
	if err := b.keepsShared(set, owner); err != nil {
		return nil, err
	}
	b.hold(set, owner)
	return set, nil
}

// Claim takes exactly the cores of want for owner, or says which core
// cannot be had and why.
func (b *Book) Claim(want cpuset.Set, owner string) error {
	for _, c := range want {
		if !b.cores.Contains(c) {
			return fmt.Errorf("core %d does not exist on node %s (cores %s)", c, b.Node, b.cores)
		}
		if h, taken := b.held[c]; taken && h.Container != owner {
			who := h.Container
			if !h.Fleet {
				who += " (outside the fleet)"
			}
			return fmt.Errorf("core %d of node %s is held by %s", c, b.Node, who)
		}
	}
	if err := b.keepsShared(want, owner); err != nil {
		return err
	}
	b.hold(want, owner)
	return nil
}

// keepsShared refuses to give owner set if that left fewer than
// api.MinSharedCores cores to the shared pool: the containers that hold no
// exclusive cores, fleet or not, would have nowhere to run.
func (b *Book) keepsShared(set cpuset.Set, owner string) error {
	var fleet []int
	for c, h := range b.held {
		if h.Fleet && h.Container != owner {
			fleet = append(fleet, c)
		}
	}
	room := api.ExclusiveRoom(b.cores, cpuset.Of(fleet...))
	if len(set) <= room {
		return nil
	}
	return fmt.Errorf("node %s must keep %d of its %d cores shared with the containers that hold none: %d more can be held exclusively, %d asked",
		b.Node, api.MinSharedCores, len(b.cores), room, len(set))
}

func (b *Book) hold(set cpuset.Set, owner string) {
	for c, h := range b.held {
		if h.Container == owner {
			delete(b.held, c)
		}
	}
	for _, c := range set {
		b.held[c] = api.Hold{Core: c, Container: owner, Fleet: true}
	}
}
