package commands

import (
	"bytes"
	"errors"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/cliplugin/internal/deploy"
	"github.com/docker-fleet/fleet/shared/spec"
)

func TestCreateConstraint(t *testing.T) {
	svcs, err := createServices(t, "--name", "db", "--image", "postgres:15",
		"--constraint", "node.labels.disk == ssd", "--constraint", "node.role!=manager")
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(svcs[0].Constraints, []string{"node.labels.disk==ssd", "node.role!=manager"}))
	assert.Check(t, is.Equal(svcs[0].Node, ""))

	// node.hostname== is --node, as in a Compose file.
	svcs, err = createServices(t, "--name", "db", "--image", "postgres:15", "--constraint", "node.hostname==h2")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(svcs[0].Node, "h2"))
	assert.Check(t, is.Len(svcs[0].Constraints, 0))

	_, err = createServices(t, "--name", "db", "--image", "postgres:15", "--constraint", "node.labels.disk=ssd")
	assert.Check(t, is.Error(err, `--constraint: "node.labels.disk=ssd": write KEY==VALUE or KEY!=VALUE, such as node.labels.disk==ssd`))

	_, err = createServices(t, "-f", "compose.yaml", "--constraint", "node.role==worker")
	assert.Check(t, is.ErrorContains(err, "--constraint: give the service in the file or in flags, not both"))
}

func TestRenderPlanLeftOut(t *testing.T) {
	var out bytes.Buffer
	assert.NilError(t, renderPlan(&out, &deploy.Plan{
		Order:    [][]string{{"db"}},
		Replicas: []deploy.ReplicaPlan{{Name: "db.1", Service: "db", Node: "h3"}},
		LeftOut: []deploy.LeftOutPlan{
			{Service: "db", Node: "h1", Why: "does not match node.role==worker (role manager)"},
			{Service: "db", Node: "h2", Why: "does not match node.labels.disk==ssd (no such label)"},
		},
	}))
	assert.Check(t, is.Equal(out.String(), `ORDER  db

REPLICA  NODE  CPUS  MEMORY  AFTER
db.1     h3    -     -       -

SERVICE  LEFT OUT  WHY
db       h1        does not match node.role==worker (role manager)
db       h2        does not match node.labels.disk==ssd (no such label)

(dry run: nothing was built, sent, stored or created)
`))
}

// flagErrors names flags from each fault's field, keeping the message and
// the faults it does not know.
func TestFlagErrors(t *testing.T) {
	s := spec.Service{Name: "web", Image: "img", Replicas: 1, Memory: 1024, Strategy: "pack", UpdateConfig: &spec.UpdateConfig{Parallelism: -1}}
	err := flagErrors(s.Validate())
	assert.Check(t, is.Error(err, "--memory: 1KiB is below the engine's minimum of 6MiB\n"+
		"--strategy: \"pack\": use spread or binpack\n"+
		"update_config.parallelism: -1: at least 1, or 0 for the default (1)"))
	var fe *spec.FieldError
	assert.Check(t, errors.As(err, &fe) && fe.Field == "--memory", "still a FieldError, of the flag")

	_, err = createServices(t, "--name", "db", "--image", "postgres:15", "--publish", "80:x")
	assert.Check(t, is.Error(err, `--publish "80:x": "x" is not a port number`))
}
