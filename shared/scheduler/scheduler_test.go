package scheduler

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/spec"
)

func nodes() []Node {
	// Three cores each, one of which stays shared: two to give.
	three := cpuset.Of(0, 1, 2)
	return []Node{
		{Name: "h1", Cores: three, Free: three, MemFree: 1 << 30},
		{Name: "h2", Cores: three, Free: cpuset.Of(1, 2), Exclusive: cpuset.Of(0), MemFree: 1 << 30, Containers: 1},
		{Name: "h3", Cores: three, Free: three, MemFree: 1 << 30},
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
	// The third core of each stays shared.
	assert.Check(t, is.ErrorContains(err, "h1: 0 more of its 3 cores can be held exclusively (1 stays shared), 1 needed"))
	assert.Check(t, is.ErrorContains(err, "h3: 0 more of its 3 cores"))

	// A node whose cores are taken by containers outside the fleet says so.
	ns = []Node{{Name: "h1", Cores: cpuset.Of(0, 1), MemFree: 1 << 30}}
	_, err = Place(ns, Request{Cores: 1}, 1)
	assert.Check(t, is.ErrorContains(err, "h1: 0 of 2 cores free, 1 needed"))
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
	assert.Check(t, is.ErrorContains(err, "h1: has no core 5 (cores 0-2)"))

	_, err = Place(nodes(), Request{Node: "h2", Cores: 2}, 1)
	assert.Check(t, is.ErrorContains(err, "h2: 1 more of its 3 cores can be held exclusively (1 stays shared), 2 needed"))
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

// web publishes -p 8080:8080, and one port the engine picks.
func web() spec.Service {
	return spec.Service{Name: "web", Image: "nginx", Ports: []spec.Port{
		{Host: 8080, Container: 8080, Protocol: "tcp"}, {Container: 9090, Protocol: "tcp"},
	}}
}

// ledgers are three nodes as their agents report them.
func ledgers(ports map[string][]api.HostPort) []Node {
	var out []Node
	for _, name := range []string{"h1", "h2", "h3"} {
		l := api.Ledger{Node: name, Cores: []int{0, 1}, MemTotal: 1 << 30, Ports: ports[name]}
		out = append(out, NodeOf(name, "ready", "active", l, nil))
	}
	return out
}

func TestRequestOfFixedHostPortsOnly(t *testing.T) {
	req := RequestOf(web())
	assert.Check(t, is.DeepEqual(req.Ports, []Port{{8080, "tcp"}}), "the engine picks 9090's host port: free anywhere")
	assert.Check(t, is.Equal(req.Service, "web"))
}

func TestHostPortOneReplicaPerNode(t *testing.T) {
	got, err := Place(ledgers(nil), RequestOf(web()), 3)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(got, []string{"h1", "h2", "h3"}))
}

func TestHostPortFourReplicasOnThreeNodes(t *testing.T) {
	_, err := Place(ledgers(nil), RequestOf(web()), 4)
	assert.Check(t, is.ErrorContains(err, "no node can take it: "))
	for _, n := range []string{"h1", "h2", "h3"} {
		assert.Check(t, is.ErrorContains(err, n+": host port 8080/tcp taken by a new replica of web"))
	}
}

func TestHostPortTakenOnTheNodes(t *testing.T) {
	// web.1 runs on h1; h2's port is held by a container outside the
	// fleet, which counts the same.
	ns := ledgers(map[string][]api.HostPort{
		"h1": {{Port: 8080, Protocol: "tcp", Container: "web.1"}},
		"h2": {{Port: 8080, Protocol: "tcp", Container: "nginx"}},
	})
	got, err := Place(ns, RequestOf(web()), 1)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(got, []string{"h3"}))
	_, err = Place(ns, RequestOf(web()), 1)
	assert.Check(t, is.ErrorContains(err, "h1: host port 8080/tcp taken by web.1"))
	assert.Check(t, is.ErrorContains(err, "h2: host port 8080/tcp taken by nginx"))
	assert.Check(t, is.ErrorContains(err, "h3: host port 8080/tcp taken by a new replica of web"))
}

func TestHostPortProtocolsDiffer(t *testing.T) {
	// udp 8080 taken everywhere: a tcp 8080 still fits, a udp one not.
	udp := []api.HostPort{{Port: 8080, Protocol: "udp", Container: "dns"}}
	ns := ledgers(map[string][]api.HostPort{"h1": udp, "h2": udp, "h3": udp})
	got, err := Place(ns, RequestOf(web()), 3)
	assert.NilError(t, err)
	assert.Check(t, is.Len(got, 3))

	dns := spec.Service{Name: "dns", Ports: []spec.Port{{Host: 8080, Container: 53, Protocol: "udp"}}}
	_, err = Place(ledgers(map[string][]api.HostPort{"h1": udp, "h2": udp, "h3": udp}), RequestOf(dns), 1)
	assert.Check(t, is.ErrorContains(err, "h1: host port 8080/udp taken by dns"))
}

func TestHostPortCountsAfterOtherReasons(t *testing.T) {
	ns := ledgers(map[string][]api.HostPort{"h1": {{Port: 8080, Protocol: "TCP", Container: "web.1"}}})
	ns[1].Unusable = "node is down"
	req := RequestOf(web())
	req.Memory = 2 << 30
	_, err := Place(ns, req, 1)
	assert.Check(t, is.ErrorContains(err, "h2: node is down"))
	assert.Check(t, is.ErrorContains(err, "h3: 1GiB of memory free, 2GiB needed"))
	req.Memory = 0
	_, err = Place(ns[:1], req, 1)
	assert.Check(t, is.ErrorContains(err, "h1: host port 8080/tcp taken by web.1"), "protocols compare in any case")
}

func TestPortsHeld(t *testing.T) {
	l := api.Ledger{Ports: []api.HostPort{
		{Port: 8080, Protocol: "tcp", Container: "web.1"},
		{Port: 53, Protocol: "udp", Container: "dns.1"},
		{Port: 8443, Protocol: "tcp", Container: "web.1"},
	}}
	assert.Check(t, is.DeepEqual(PortsHeld(l, "web.1"), []Port{{8080, "tcp"}, {8443, "tcp"}}))
	assert.Check(t, is.Len(PortsHeld(l, "db.1"), 0))
}

func TestPlaceLeavesTheCallersPortsAlone(t *testing.T) {
	taken := map[Port]string{{8443, "tcp"}: "other"}
	ns := []Node{{Name: "h1", MemFree: 1 << 30, Ports: taken}}
	_, err := Place(ns, Request{Ports: []Port{{8080, "tcp"}}}, 1)
	assert.NilError(t, err)
	assert.Check(t, is.Len(taken, 1), "the map given is not written to")
	assert.Check(t, is.Len(ns[0].Ports, 2), "the node placed on has the port taken")
}

// labelled are three nodes as the swarm describes them: h1 a manager, h2
// and h3 workers; h2 has an SSD and h3 is arm64.
func labelled() []Node {
	ns := nodes()
	ns[0].Facts = spec.NodeFacts{ID: "id1", Role: "manager", OS: "linux", Arch: "x86_64"}
	ns[1].Facts = spec.NodeFacts{ID: "id2", Role: "worker", OS: "linux", Arch: "x86_64", Labels: map[string]string{"disk": "ssd"}}
	ns[2].Facts = spec.NodeFacts{ID: "id3", Role: "worker", OS: "linux", Arch: "aarch64", Labels: map[string]string{"disk": "hdd"}}
	return ns
}

func TestConstraintsFilterNodes(t *testing.T) {
	for _, tc := range []struct {
		cons []string
		n    int
		want []string
	}{
		{nil, 3, []string{"h1", "h3", "h1"}},
		{[]string{"node.labels.disk==ssd"}, 1, []string{"h2"}},
		{[]string{"node.role==worker"}, 2, []string{"h3", "h2"}},
		{[]string{"node.role!=manager", "node.platform.arch==x86_64"}, 1, []string{"h2"}},
		{[]string{"node.hostname!=h1", "node.labels.disk!=ssd"}, 2, []string{"h3", "h3"}},
		{[]string{"node.id==id1"}, 2, []string{"h1", "h1"}},
		{[]string{"node.platform.os==LINUX"}, 1, []string{"h1"}},
	} {
		got, err := Place(labelled(), Request{Cores: 1, Constraints: tc.cons}, tc.n)
		assert.Check(t, err, "%v", tc.cons)
		assert.Check(t, is.DeepEqual(got, tc.want), "%v", tc.cons)
	}
}

func TestConstraintsNoNodeMatches(t *testing.T) {
	_, err := Place(nodes(), Request{Constraints: []string{"node.labels.disk==ssd"}}, 1)
	assert.Check(t, is.Error(err, "no node matches node.labels.disk==ssd (h1, h2, h3 have no such label)"))

	_, err = Place(labelled(), Request{Constraints: []string{"node.labels.disk==nvme"}}, 1)
	assert.Check(t, is.Error(err, "no node matches node.labels.disk==nvme (h1 has no such label; h2 has disk=ssd; h3 has disk=hdd)"))

	_, err = Place(labelled(), Request{Constraints: []string{"node.role==worker", "node.labels.disk==ssd", "node.platform.arch==aarch64"}}, 1)
	assert.Check(t, is.Error(err, "no node matches all of node.role==worker (h1 has role manager), node.labels.disk==ssd (h3 has disk=hdd) and node.platform.arch==aarch64 (h2 has arch x86_64)"))
}

func TestConstraintsThenRoom(t *testing.T) {
	// h2 alone matches, and is full: the nodes left out say why too.
	_, err := Place(labelled(), Request{Cores: 2, Constraints: []string{"node.labels.disk==ssd"}}, 1)
	assert.Check(t, is.ErrorContains(err, "no node can take it: h1: does not match node.labels.disk==ssd (no such label); h2: 1 more of its 3 cores can be held exclusively (1 stays shared), 2 needed; h3: does not match node.labels.disk==ssd (disk=hdd)"))

	// A constraint and the node asked for: both hold.
	_, err = Place(labelled(), Request{Node: "h1", Constraints: []string{"node.role==worker"}}, 1)
	assert.Check(t, is.ErrorContains(err, "h1: does not match node.role==worker (role manager); h2: not the node asked for (h1)"))

	// A node that cannot be used still counts as matching.
	ns := labelled()
	ns[1].Unusable = "node is down"
	_, err = Place(ns, Request{Constraints: []string{"node.labels.disk==ssd"}}, 1)
	assert.Check(t, is.ErrorContains(err, "h2: node is down"))
}

func TestConstraintsInvalid(t *testing.T) {
	_, err := Place(nodes(), Request{Constraints: []string{"node.labels.disk=ssd"}}, 1)
	assert.Check(t, is.ErrorContains(err, `deploy.placement.constraints: "node.labels.disk=ssd": write KEY==VALUE`))
}

func TestRequestOfConstraints(t *testing.T) {
	s := web()
	s.Constraints = []string{"node.role==worker"}
	assert.Check(t, is.DeepEqual(RequestOf(s).Constraints, []string{"node.role==worker"}))
}
