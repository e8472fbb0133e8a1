//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// psRow is a line of docker fleet ps --format json.
type psRow struct {
	Name          string
	Service       string
	Replica       int
	Node          string
	State         string
	Cpuset        string
	Memory        int64
	IP            string
	StartedAt     string
	Uptime        string
	Migrations    int
	LastMigration struct {
		From, To, Time, Ago string
	}
}

// psJSON runs ps --format json with args and reads its rows.
func psJSON(t *testing.T, args ...string) []psRow {
	t.Helper()
	out := mustFleet(t, append([]string{"ps", "--format", "json"}, args...)...)
	rows := []psRow{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var r psRow
		assert.NilError(t, json.Unmarshal([]byte(line), &r), "ps --format json: one object a line, not %q", line)
		rows = append(rows, r)
	}
	return rows
}

func psNames(rows []psRow) []string {
	names := []string{}
	for _, r := range rows {
		names = append(names, r.Name)
	}
	return names
}

func engineNames(cs []engineContainer) []string {
	names := []string{}
	for _, c := range cs {
		names = append(names, c.Name)
	}
	sort.Strings(names)
	return names
}

// assertRowsAreEngines checks ps's rows against what the engines report:
// the same containers, each on its node with its state, cores and memory.
func assertRowsAreEngines(t *testing.T, rows []psRow, cs []engineContainer) {
	t.Helper()
	assert.Check(t, is.DeepEqual(slices.Sorted(slices.Values(psNames(rows))), engineNames(cs)))
	for _, c := range cs {
		i := slices.IndexFunc(rows, func(r psRow) bool { return r.Name == c.Name })
		if i < 0 {
			continue
		}
		r := rows[i]
		assert.Check(t, is.Equal(r.Node, c.Host), c.Name)
		assert.Check(t, is.Equal(r.State == "running", c.State.Running), "%s: ps says %s", c.Name, r.State)
		assert.Check(t, is.Equal(r.Cpuset, c.HostConfig.CpusetCpus), c.Name)
		assert.Check(t, is.Equal(r.Memory, c.HostConfig.Memory), c.Name)
		assert.Check(t, is.Equal(r.StartedAt, c.State.StartedAt), c.Name)
		assert.Check(t, is.Equal(r.Uptime != "", c.State.Running), "%s: uptime %q", c.Name, r.Uptime)
	}
}

// sortedByServiceAndReplica says whether rows come by service, then by
// replica number (web.2 before web.10).
func sortedByServiceAndReplica(rows []psRow) bool {
	return slices.IsSortedFunc(rows, func(a, b psRow) int {
		if a.Service != b.Service {
			return strings.Compare(a.Service, b.Service)
		}
		return a.Replica - b.Replica
	})
}

// psLine is the table line of container name.
func psLine(t *testing.T, table, name string) string {
	t.Helper()
	for _, l := range strings.Split(table, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name {
			return l
		}
	}
	t.Fatalf("no line for %s in\n%s", name, table)
	return ""
}

func TestPsListsWhatTheEnginesRun(t *testing.T) {
	initFleet(t)
	removeServices(t, "psa", "psb")
	mustFleet(t, "create", "--name", "psa", "--image", workload, "--replicas", "2", "--cpus", "1", "--memory", "64m", "-e", "BALLAST_MB=4")
	mustFleet(t, "create", "--name", "psb", "--image", workload, "--memory", "64m", "-e", "BALLAST_MB=4")

	// Everything, as the engines have it, by service then replica.
	all := engineContainers(t)
	rows := psJSON(t)
	assertRowsAreEngines(t, rows, all)
	assert.Check(t, sortedByServiceAndReplica(rows), "%v", psNames(rows))

	// SERVICE arguments, and the table.
	table := mustFleet(t, "ps", "psa", "psb")
	assert.Check(t, strings.HasPrefix(table, "NAME "), table)
	for _, h := range []string{"NODE", "STATE", "CPUSET", "MEMORY", "IP", "UPTIME", "LAST MIGRATION"} {
		assert.Check(t, is.Contains(strings.Split(table, "\n")[0], h))
	}
	assert.Check(t, is.DeepEqual(psNames(psJSON(t, "psa", "psb")), []string{"psa.1", "psa.2", "psb.1"}))

	// service=
	psa := ofService(all, "psa")
	assert.Assert(t, is.Len(psa, 2))
	assertRowsAreEngines(t, psJSON(t, "--filter", "service=psa"), psa)

	// node=: every fleet container on that node, and only those.
	src := psa[0].Host
	var onSrc []engineContainer
	for _, c := range all {
		if c.Host == src {
			onSrc = append(onSrc, c)
		}
	}
	assertRowsAreEngines(t, psJSON(t, "--filter", "node="+src), onSrc)
	// The same key twice is either value; different keys are both.
	assertRowsAreEngines(t, psJSON(t, "--filter", "service=psa", "--filter", "service=psb"), append(ofService(all, "psa"), ofService(all, "psb")...))
	var psaOnSrc []engineContainer
	for _, c := range psa {
		if c.Host == src {
			psaOnSrc = append(psaOnSrc, c)
		}
	}
	assertRowsAreEngines(t, psJSON(t, "--filter", "service=psa", "--filter", "node="+src), psaOnSrc)

	// -q: names only.
	assert.Check(t, is.Equal(mustFleet(t, "ps", "-q", "--filter", "service=psa"), "psa.1\npsa.2\n"))

	// state=: psb.1 stopped on its engine is exited, not running.
	psb := ofService(all, "psb")
	assert.Assert(t, is.Len(psb, 1))
	mustDocker(t, psb[0].Host, "stop", "psb.1")
	assert.Check(t, is.DeepEqual(psNames(psJSON(t, "--filter", "state=exited", "--filter", "service=psb")), []string{"psb.1"}))
	assert.Check(t, is.DeepEqual(psNames(psJSON(t, "--filter", "state=running", "--filter", "service=psb")), []string{}))
	assert.Check(t, is.DeepEqual(psNames(psJSON(t, "--filter", "state=running", "psa")), []string{"psa.1", "psa.2"}))
	assertRowsAreEngines(t, psJSON(t, "psb"), ofService(engineContainers(t), "psb"))
	assert.Check(t, is.Contains(psLine(t, mustFleet(t, "ps", "psb"), "psb.1"), "exited"))

	// A key ps does not know is refused, naming the ones it does.
	r := fleetCmd(t, "ps", "--filter", "colour=red")
	assert.Check(t, is.Equal(r.Code, 1), r.String())
	assert.Check(t, is.Contains(r.Stderr, `unknown key "colour" (valid keys: node, project, service, state)`))

	// Never migrated: no last migration.
	for _, row := range psJSON(t, "psa") {
		assert.Check(t, is.Equal(row.Migrations, 0), row.Name)
		line := strings.TrimSpace(psLine(t, table, row.Name))
		assert.Check(t, strings.HasSuffix(line, " -"), "%s: no migration, yet %q", row.Name, line)
	}

	// A migration shows as the last one, where it went.
	dest := ""
	for _, h := range fleetHosts(t) {
		if h != psa[0].Host && h != psa[1].Host {
			dest = h
		}
	}
	assert.Assert(t, dest != "", "no host without a psa replica")
	name := psa[0].Name
	mustFleet(t, "migrate", name, "--to", dest)
	c, ok := containerOn(t, name)
	assert.Assert(t, ok)
	assert.Check(t, is.Equal(c.Host, dest))

	rows = psJSON(t, "--filter", "service=psa")
	assertRowsAreEngines(t, rows, ofService(engineContainers(t), "psa"))
	moved := rows[slices.IndexFunc(rows, func(r psRow) bool { return r.Name == name })]
	assert.Check(t, is.Equal(moved.Node, dest))
	assert.Check(t, is.Equal(moved.Migrations, 1))
	assert.Check(t, is.Equal(moved.LastMigration.From, src))
	assert.Check(t, is.Equal(moved.LastMigration.To, dest))
	assert.Check(t, strings.HasSuffix(moved.LastMigration.Ago, " ago"), moved.LastMigration.Ago)
	assertRowsAreEngines(t, psJSON(t, "--filter", "node="+dest, "--filter", "service=psa"), []engineContainer{c})

	line := psLine(t, mustFleet(t, "ps", "psa"), name)
	assert.Check(t, is.Contains(line, fmt.Sprintf("%s → %s, ", src, dest)))
	assert.Check(t, strings.HasSuffix(strings.TrimSpace(line), " ago"), line)
	// A template sees the same fields.
	want := map[string]string{"psa.1": "psa.1", "psa.2": "psa.2"}
	want[name] = name + " " + src + " " + dest
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(mustFleet(t, "ps", "psa", "--format", "{{.Name}} {{.LastMigration.From}} {{.LastMigration.To}}")), "\n") {
		got = append(got, strings.TrimSpace(l))
	}
	assert.Check(t, is.DeepEqual(got, []string{want["psa.1"], want["psa.2"]}))
}
