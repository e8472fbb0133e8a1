package leader

import (
	"context"
	"log"
	"net"
	"strconv"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/scheduler"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// live are the nodes that can run containers now: their agent answers,
// the swarm has them ready and active, and none is held dead.
func live(views []view, down map[string]swarmstore.Down) []view {
	var out []view
	for _, v := range views {
		if _, isDown := down[v.Hostname]; !isDown && v.err == nil && v.State == "ready" && v.Availability == "active" {
			out = append(out, v)
		}
	}
	return out
}

// standbys keeps a standby node chosen, ahead of any failure, for every
// container checkpointed in the background: a live node other than its
// own, where it would fit if it can. And it has nodes forget copies that
// can no longer serve: of a container that runs on that very node, or
// whose node sends its checkpoints elsewhere now.
func (l *Leader) standbys(ctx context.Context, views []view, down map[string]swarmstore.Down) {
	up := live(views, down)
	byName := map[string]view{}
	where := map[string]api.FleetContainer{} // container → as its node reports it
	for _, v := range up {
		byName[v.Hostname] = v
		for _, c := range v.ledger.Containers {
			where[c.Name] = c
		}
	}
	network := ""
	assigned := map[string]string{} // this round's choices, which the ledgers do not show yet
	for _, v := range up {
		for _, c := range v.ledger.Containers {
			cp := c.Checkpoint
			if cp == nil {
				continue
			}
			if _, ok := byName[cp.Standby]; ok && cp.Standby != v.Hostname {
				delete(l.standbyAway, c.Name)
				continue
			}
			if cp.Standby != "" && cp.Standby != v.Hostname && l.awayAgain(c.Name) < standbyPatience {
				continue // a standby slow to answer once is not replaced
			}
			svc, svcErr := swarmstore.LoadService(ctx, l.Engine, c.Service)
			to, ok := chooseStandby(v, c, up, svc.Constraints)
			if !ok {
				continue // a one-node fleet, or no other node its constraints allow
			}
			if network == "" {
				n, err := swarmstore.FindNetwork(ctx, l.Engine)
				if err != nil {
					log.Printf("leader: choosing standby nodes: %v", err)
					return
				}
				network = n.Name
			}
			exp := api.StandbyExpect{Container: c.Name, From: v.Hostname, Network: network, Cores: cores(c), Memory: c.Memory}
			if svcErr == nil {
				exp.Privileges = api.PrivilegesOf(svc)
			}
			if err := l.assignStandby(ctx, v, to, exp); err != nil {
				log.Printf("leader: choosing %s as the standby node of %s: %v", to.Hostname, c.Name, err)
				continue
			}
			assigned[c.Name] = to.Hostname
			delete(l.standbyAway, c.Name)
			log.Printf("leader: %s is the standby node of %s (checkpoints every %s from %s)", to.Hostname, c.Name, cp.Every, v.Hostname)
		}
	}
	claimed := l.claimed(ctx, up)
	for _, v := range up {
		for _, sc := range v.ledger.Standbys {
			c, runs := where[sc.Container]
			switch {
			case !runs && (claimed == nil || claimed[sc.Container]):
				// Its node is not live: the copy may be all that is
				// left of it.
				continue
			case runs && c.Node != v.Hostname && c.Checkpoint != nil && c.Checkpoint.Standby == v.Hostname,
				assigned[sc.Container] == v.Hostname:
				continue // still its standby
			}
			a, err := l.agent(v.Node)
			if err == nil {
				err = a.StandbyDrop(ctx, api.StandbyDrop{Container: sc.Container})
			}
			if err != nil {
				log.Printf("leader: having %s drop its standby copy of %s: %v", v.Hostname, sc.Container, err)
			}
		}
	}
}

// standbyPatience is how many rounds a standby may be away before its
// containers get another: each new standby costs a full checkpoint at once.
const standbyPatience = 3

// awayAgain counts one more round that container's standby is away.
func (l *Leader) awayAgain(container string) int {
	if l.standbyAway == nil {
		l.standbyAway = map[string]int{}
	}
	l.standbyAway[container]++
	return l.standbyAway[container]
}

// chooseStandby picks the standby node of container c of node v among the
// live nodes its service's placement constraints allow (a warm restore
// there would break them): one where it would fit now, by the scheduler's
// spread; any other node if none can take it now (room may be made by
// the time it is needed; a relocation that does not fit goes cold
// elsewhere).
func chooseStandby(v view, c api.FleetContainer, up []view, constraints []string) (view, bool) {
	// The stored definition was checked when made: one that no longer
	// parses constrains nothing here, and its cold relocation says why.
	cons, _ := spec.ParseConstraints(constraints)
	var sched []scheduler.Node
	var others []view
	for _, o := range up {
		if o.Hostname == v.Hostname {
			continue
		}
		sn := scheduler.NodeOf(o.Hostname, o.State, o.Availability, o.ledger, nil)
		sn.Facts = o.Facts()
		if scheduler.Excluded(sn, cons) != "" {
			continue
		}
		others = append(others, o)
		sched = append(sched, sn)
	}
	if len(others) == 0 {
		return view{}, false
	}
	// Its host ports too: a copy restored where one is taken would fail.
	req := scheduler.Request{Cores: cores(c), Memory: c.Memory, Strategy: "spread", Ports: scheduler.PortsHeld(v.ledger, c.Name)}
	if got, err := scheduler.Place(sched, req, 1); err == nil {
		for _, o := range others {
			if o.Hostname == got[0] {
				return o, true
			}
		}
	}
	return others[0], true
}

// cores is how many exclusive cores c holds.
func cores(c api.FleetContainer) int {
	if !c.Exclusive {
		return 0
	}
	set, _ := cpuset.Parse(c.Cpuset)
	return len(set)
}

// assignStandby tells the standby node to take the container's
// checkpoints from its node, then tells its node to send them there.
func (l *Leader) assignStandby(ctx context.Context, from, to view, exp api.StandbyExpect) error {
	ta, err := l.agent(to.Node)
	if err != nil {
		return err
	}
	if err := ta.StandbyExpect(ctx, exp); err != nil {
		return err
	}
	container := exp.Container
	fa, err := l.agent(from.Node)
	if err != nil {
		return err
	}
	return fa.StandbyAssign(ctx, api.StandbyAssign{Container: container, To: to.Hostname,
		ToAddr: net.JoinHostPort(to.Addr, strconv.Itoa(to.AgentPort))})
}

// warmCopy finds the newest whole checkpoint of container name that a live
// node holds from the dead node: the one to restore it from.
func warmCopy(name, dead string, up []view) (view, api.StandbyCopy, bool) {
	var best view
	var copy api.StandbyCopy
	found := false
	for _, v := range up {
		for _, sc := range v.ledger.Standbys {
			if sc.Container == name && sc.From == dead && (!found || sc.At.After(copy.At)) {
				best, copy, found = v, sc, true
			}
		}
	}
	return best, copy, found
}

// claimed are the replica names claimed fleet-wide, read only when a live
// node holds standby copies (nil when unknown): a copy of a replica with
// no claim left (removed, scaled away) serves nothing.
func (l *Leader) claimed(ctx context.Context, up []view) map[string]bool {
	any := false
	for _, v := range up {
		any = any || len(v.ledger.Standbys) > 0
	}
	if !any {
		return nil
	}
	claims, err := swarmstore.Claims(ctx, l.Engine)
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, c := range claims {
		out[c.Name] = true
	}
	return out
}
