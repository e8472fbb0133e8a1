package commands

import (
	"testing"

	"github.com/spf13/cobra"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
)

const noFile = cobra.ShellCompDirectiveNoFileComp

func TestMatching(t *testing.T) {
	names := []string{"web.2", "web", "db", "web.1", "web", ""}
	assert.Check(t, is.DeepEqual(matching(names, "", nil), []string{"db", "web", "web.1", "web.2"}))
	assert.Check(t, is.DeepEqual(matching(names, "we", nil), []string{"web", "web.1", "web.2"}))
	assert.Check(t, is.DeepEqual(matching(names, "web.", []string{"web.1"}), []string{"web.2"}))
	assert.Check(t, is.Len(matching(names, "x", nil), 0))
}

func TestContainerNames(t *testing.T) {
	cs := []api.FleetContainer{{Name: "web.1", State: "running"}, {Name: "web.2", State: "exited"}}
	assert.Check(t, is.DeepEqual(containerNames(cs, false), []string{"web.1", "web.2"}))
	assert.Check(t, is.DeepEqual(containerNames(cs, true), []string{"web.1"}))
}

func TestScaleCompletions(t *testing.T) {
	svcs := []string{"api", "web", "worker"}
	got, dir := scaleCompletions(svcs, nil, "w")
	assert.Check(t, is.DeepEqual(got, []string{"web=", "worker="}))
	assert.Check(t, is.Equal(dir, cobra.ShellCompDirectiveNoSpace|noFile), "no space after SERVICE=")

	// A service given already is not offered again, whatever its count.
	got, _ = scaleCompletions(svcs, []string{"web=+2"}, "")
	assert.Check(t, is.DeepEqual(got, []string{"api=", "worker="}))

	// After the "=" comes a count: nothing is guessed.
	got, dir = scaleCompletions(svcs, nil, "web=")
	assert.Check(t, is.Len(got, 0))
	assert.Check(t, is.Equal(dir, noFile))
}

func TestPsFilterCompletions(t *testing.T) {
	names := fleetNames{nodes: []string{"h1", "h2"}, services: []string{"db", "web"}, projects: []string{"shop"}}
	got, dir := psFilterCompletions(names, "")
	assert.Check(t, is.DeepEqual(got, []string{"node=", "project=", "service=", "state="}))
	assert.Check(t, is.Equal(dir, cobra.ShellCompDirectiveNoSpace|noFile))

	got, _ = psFilterCompletions(names, "s")
	assert.Check(t, is.DeepEqual(got, []string{"service=", "state="}))

	got, dir = psFilterCompletions(names, "node=")
	assert.Check(t, is.DeepEqual(got, []string{"node=h1", "node=h2"}))
	assert.Check(t, is.Equal(dir, noFile))

	got, _ = psFilterCompletions(names, "state=ex")
	assert.Check(t, is.DeepEqual(got, []string{"state=exited"}))
	got, _ = psFilterCompletions(names, "project=")
	assert.Check(t, is.DeepEqual(got, []string{"project=shop"}))
	got, _ = psFilterCompletions(names, "name=")
	assert.Check(t, is.Len(got, 0))
}

func TestUpTo(t *testing.T) {
	all := func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"h1"}, noFile
	}
	got, _ := upTo(1, all)(nil, nil, "")
	assert.Check(t, is.DeepEqual(got, []string{"h1"}))
	got, dir := upTo(1, all)(nil, []string{"h1"}, "")
	assert.Check(t, is.Len(got, 0))
	assert.Check(t, is.Equal(dir, noFile))
}

// Without a docker CLI (or a fleet) completion offers nothing, quietly.
func TestCompletionWithoutAFleet(t *testing.T) {
	cmd := &cobra.Command{}
	got, dir := completeContainersOrServices(nil)(cmd, nil, "")
	assert.Check(t, is.Len(got, 0))
	assert.Check(t, is.Equal(dir, noFile))
	got, _ = completeScale(nil)(cmd, nil, "")
	assert.Check(t, is.Len(got, 0))
}

// Every command shows examples in --help, and every one that takes a
// node, service or container completes it.
func TestCommandsHaveExamplesAndCompletion(t *testing.T) {
	completes := map[string]bool{
		"describe": true, "leave": true, "migrate": true, "ps": true, "resize": true,
		"rm": true, "scale": true, "update": true, "rebalance": true, "drain": true, "activate": true,
	}
	flags := map[string][]string{
		"create":    {"node", "file"},
		"down":      {"project-name", "file"},
		"migrate":   {"to"},
		"ps":        {"filter"},
		"rebalance": {"strategy"},
	}
	for _, c := range NewRootCommand(nil).Commands() {
		assert.Check(t, c.Example != "", "%s has no Example", c.Name())
		if completes[c.Name()] {
			assert.Check(t, c.ValidArgsFunction != nil, "%s completes no argument", c.Name())
		}
		for _, f := range flags[c.Name()] {
			_, ok := c.GetFlagCompletionFunc(f)
			assert.Check(t, ok, "%s --%s has no completion", c.Name(), f)
		}
	}
}
