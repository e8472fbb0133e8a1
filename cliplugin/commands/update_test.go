package commands

import (
	"testing"

	"github.com/spf13/cobra"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/spec"
)

// updateChange parses update's flags and applies them to s.
func updateChange(t *testing.T, s spec.Service, args ...string) (spec.Service, error) {
	t.Helper()
	cmd := &cobra.Command{}
	var opts updateOptions
	opts.addFlags(cmd.Flags())
	assert.NilError(t, cmd.ParseFlags(args))
	change, err := opts.change(cmd)
	if err != nil {
		return s, err
	}
	assert.Assert(t, change != nil, "no change from %v", args)
	return s, change(&s)
}

func TestUpdateFlagsChangeTheDefinition(t *testing.T) {
	s := spec.Service{Name: "web", Image: "a", Env: []string{"A=1", "B=2"},
		Ports: []spec.Port{{Host: 8080, Container: 80, Protocol: "tcp"}}}
	got, err := updateChange(t, s, "--image", "b", "--env-add", "A=9", "--env-rm", "B", "--publish-rm", "80", "--args", "serve --port 81")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(got.Image, "b"))
	assert.Check(t, is.DeepEqual(got.Env, []string{"A=9"}))
	assert.Check(t, is.Len(got.Ports, 0))
	assert.Check(t, is.DeepEqual(got.Command, []string{"serve", "--port", "81"}))

	_, err = updateChange(t, s, "--publish-rm", "81")
	assert.Check(t, is.ErrorContains(err, "--publish-rm 81: the service publishes no container port 81/tcp"))
	_, err = updateChange(t, s, "--env-add", "novalue")
	assert.Check(t, is.ErrorContains(err, `--env-add "novalue": use KEY=VALUE`))

	got, err = updateChange(t, s, "--health-cmd", "true", "--health-interval", "2s")
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(got.Healthcheck, &spec.Healthcheck{Test: []string{"CMD-SHELL", "true"}, Interval: spec.Duration(2e9)}))
	_, err = updateChange(t, s, "--health-retries", "3")
	assert.Check(t, is.ErrorContains(err, "give --health-cmd too"))
}
