package workloads

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/spec"
)

// A fixed host port is one per node, whoever publishes it: the engine
// refuses a second container on it only when that one starts, and a
// create or migration that got so far is undone. The agent reports the
// taken ones in its ledger for the scheduler, and refuses a replica or
// twin that publishes one, in the same critical section as its cores.

// hostPorts are the fixed host ports of a port map, held by holder. A
// binding without a host port, or with a range, has the engine pick one
// at start: it takes no port another could be refused for.
func hostPorts(pm network.PortMap, holder string) []api.HostPort {
	var out []api.HostPort
	for port, bindings := range pm {
		for _, b := range bindings {
			n, err := strconv.ParseUint(b.HostPort, 10, 16)
			if err != nil || n == 0 {
				continue
			}
			hp := api.HostPort{Port: uint16(n), Protocol: strings.ToLower(string(port.Proto())), Container: holder}
			if hp.Protocol == "" {
				hp.Protocol = "tcp"
			}
			// One port bound on two addresses (IPv4 and IPv6) is one.
			if !slices.Contains(out, hp) {
				out = append(out, hp)
			}
		}
	}
	sortPorts(out)
	return out
}

// ServicePorts are the fixed host ports a replica of svc publishes.
func ServicePorts(svc spec.Service) []api.HostPort {
	var out []api.HostPort
	for _, p := range svc.Ports {
		if p.Host != 0 {
			out = append(out, api.HostPort{Port: p.Host, Protocol: cmp.Or(strings.ToLower(p.Protocol), "tcp")})
		}
	}
	return out
}

// containerPorts are the fixed host ports c takes on this node, and in
// whose name: a network holder's go by the container it carries. A
// container outside the fleet that has stopped takes none (starting it
// again is its owner's call, and may be long off); a fleet container
// counts whatever its state, for it is a replica the fleet keeps.
func containerPorts(c container.InspectResponse) []api.HostPort {
	if c.HostConfig == nil || len(c.HostConfig.PortBindings) == 0 {
		return nil
	}
	holder := trimSlash(c.Name)
	_, fleet := c.Config.Labels[labels.Service]
	if of := c.Config.Labels[labels.NetnsOf]; of != "" {
		holder, fleet = of, true
	}
	if !fleet && c.State != nil && (c.State.Status == container.StateExited || c.State.Status == container.StateDead) {
		return nil
	}
	return hostPorts(c.HostConfig.PortBindings, holder)
}

// portConflicts are the entries of taken that hold a port of wanted
// (number and protocol; an address does not matter: the fleet publishes
// on all of them).
func portConflicts(taken, wanted []api.HostPort) []api.HostPort {
	var out []api.HostPort
	for _, w := range wanted {
		for _, t := range taken {
			if t.Port == w.Port && strings.EqualFold(t.Protocol, w.Protocol) {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

// checkPorts refuses host ports another container of the node holds.
func (st *state) checkPorts(node string, wanted []api.HostPort) error {
	conflicts := portConflicts(st.ports, wanted)
	if len(conflicts) == 0 {
		return nil
	}
	var why []string
	for _, c := range conflicts {
		why = append(why, fmt.Sprintf("host port %s taken by %s", c, c.Container))
	}
	return Refuse(errdefs.ErrConflict, "node %s: %s", node, strings.Join(why, ", "))
}

func sortPorts(ps []api.HostPort) {
	slices.SortFunc(ps, func(a, b api.HostPort) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Container, b.Container))
	})
}
