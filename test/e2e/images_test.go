//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// TestImagesReachNodesWithoutRegistry: an image only the manager has runs
// on a worker (the agents push it, checked by ID); an image no node has is
// refused within seconds, naming it, and nothing is left behind.
func TestImagesReachNodesWithoutRegistry(t *testing.T) {
	initFleet(t)
	removeServices(t, "onlyh1", "nowhere")
	image := fmt.Sprintf("e2e-only-h1:%d", time.Now().UnixNano())
	t.Cleanup(func() {
		removeServices(t, "onlyh1", "nowhere")
		for _, h := range fleetHostsBut("") {
			docker(t, h, "rmi", "-f", image)
		}
	})
	// An image of its own on h1 alone: a commit with a label of its own.
	tmp := "e2e-commit-" + strings.ReplaceAll(image[len("e2e-only-h1:"):], ":", "")
	mustDocker(t, "h1", "create", "--name", tmp, workload)
	mustDocker(t, "h1", "commit", "--change", "LABEL e2e.image="+image, tmp, image)
	mustDocker(t, "h1", "rm", tmp)
	id := strings.TrimSpace(mustDocker(t, "h1", "image", "inspect", "--format", "{{.Id}}", image))
	assert.Check(t, docker(t, "h2", "image", "inspect", image).Code != 0, "h2 has %s already", image)

	r := fleetCmd(t, "create", "--name", "onlyh1", "--image", image, "--node", "h2", "--memory", "64m", "-e", "BALLAST_MB=4")
	assert.Assert(t, r.Code == 0, r.String())
	assert.Check(t, is.Contains(r.Stderr+r.Stdout, "sending it from h1 to h2"))
	c, ok := containerOn(t, "onlyh1.1")
	assert.Check(t, ok && c.Host == "h2" && c.State.Running, "onlyh1.1: %+v", c)
	assert.Check(t, is.Equal(strings.TrimSpace(mustDocker(t, "h2", "image", "inspect", "--format", "{{.Id}}", image)), id))
	assert.Check(t, docker(t, "h3", "image", "inspect", image).Code != 0, "h3 got an image it does not run")

	// No node has it: refused, by its own kind, within seconds.
	t0 := time.Now()
	r = fleetCmd(t, "create", "--name", "nowhere", "--image", "e2e-no-such-image:1", "--node", "h3", "--memory", "64m")
	took := time.Since(t0)
	t.Logf("refused in %.1fs: %s", took.Seconds(), r.Stderr)
	assert.Check(t, r.Code != 0, r.String())
	assert.Check(t, is.Contains(r.Stderr, "image e2e-no-such-image:1: no node has it (looked on h1, h2, h3)"))
	assert.Check(t, took < 40*time.Second, "took %s", took)
	assert.Check(t, is.Len(ofService(engineContainers(t), "nowhere"), 0))
	assert.Check(t, fleetCmd(t, "scale", "nowhere=1").Code != 0, "the service definition of a refused create was kept")
}
