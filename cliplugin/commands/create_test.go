package commands

import (
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/spec"
)

// createServices parses create's flags as the command line would and
// builds the definitions from them.
func createServices(t *testing.T, args ...string) ([]spec.Service, error) {
	t.Helper()
	cmd := newCreateCommand(nil)
	assert.NilError(t, cmd.Flags().Parse(args))
	var opts createOptions
	// newCreateCommand binds its own options: read them back from the flags.
	f := cmd.Flags()
	opts.file, _ = f.GetString("file")
	opts.name, _ = f.GetString("name")
	opts.image, _ = f.GetString("image")
	opts.replicas, _ = f.GetInt("replicas")
	opts.strategy, _ = f.GetString("strategy")
	opts.checkpoint, _ = f.GetString("checkpoint-every")
	svcs, _, err := opts.services(cmd, strings.NewReader(""), nil)
	return svcs, err
}

func TestCreateCheckpointEvery(t *testing.T) {
	svcs, err := createServices(t, "--name", "db", "--image", "postgres:15", "--checkpoint-every", "30s")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(svcs[0].CheckpointEvery, spec.Duration(30*time.Second)))

	svcs, err = createServices(t, "--name", "db", "--image", "postgres:15")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(svcs[0].CheckpointEvery, spec.Duration(0)))

	for v, want := range map[string]string{
		"12q": `--checkpoint-every: "12q" is not a duration`,
		"1s":  "--checkpoint-every: 1s is out of range",
		"25h": "--checkpoint-every: 25h0m0s is out of range",
	} {
		_, err := createServices(t, "--name", "db", "--image", "postgres:15", "--checkpoint-every", v)
		assert.Check(t, is.ErrorContains(err, want), v)
	}

	_, err = createServices(t, "-f", "compose.yaml", "--checkpoint-every", "30s")
	assert.Check(t, is.ErrorContains(err, "--checkpoint-every: give the service in the file or in flags, not both"))
}
