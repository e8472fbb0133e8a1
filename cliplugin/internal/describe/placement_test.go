package describe

import (
	"bytes"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/spec"
)

func TestRenderServicePlacement(t *testing.T) {
	s := spec.Service{Name: "db", Image: "postgres:15", Replicas: 1, Node: "h2", Constraints: []string{"node.labels.disk==ssd"}}
	var out bytes.Buffer
	assert.NilError(t, RenderService(&out, ServiceView{Name: "db", Desired: 1, Spec: s}))
	assert.Check(t, is.Contains(out.String(), "Placement:    node.hostname==h2, node.labels.disk==ssd\n"))

	out.Reset()
	assert.NilError(t, RenderService(&out, ServiceView{Name: "web", Spec: spec.Service{Name: "web"}}))
	assert.Check(t, !bytes.Contains(out.Bytes(), []byte("Placement:")), "any node: no line")
}
