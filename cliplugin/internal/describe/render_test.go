package describe

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
)

func TestCheckpointLine(t *testing.T) {
	now := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		cp   api.CheckpointStatus
		want string
	}{
		{"no standby", api.CheckpointStatus{Every: "30s"},
			"every 30s, no standby node chosen yet"},
		{"none complete", api.CheckpointStatus{Every: "30s", Standby: "h3"},
			"every 30s to standby h3, none complete yet"},
		{"newest", api.CheckpointStatus{Every: "30s", Standby: "h3", At: now.Add(-12400 * time.Millisecond), Seq: 4, Frozen: 0.214, Bytes: 140e6},
			"every 30s to standby h3, newest 12s ago (frozen 0.21s, 140MB)"},
		{"clock skew", api.CheckpointStatus{Every: "1m0s", Standby: "h3", At: now.Add(2 * time.Second), Frozen: 0.5, Bytes: 2e9},
			"every 1m0s to standby h3, newest 0s ago (frozen 0.50s, 2GB)"},
		{"failed", api.CheckpointStatus{Every: "30s", Standby: "h3", At: now.Add(-95 * time.Second), Frozen: 0.2, Bytes: 140e6, Error: "h3: connection refused"},
			"every 30s to standby h3, newest 1m35s ago (frozen 0.20s, 140MB); last failed: h3: connection refused"},
		{"failed before any", api.CheckpointStatus{Every: "30s", Error: "criu dump: exit 1"},
			"every 30s, no standby node chosen yet; last failed: criu dump: exit 1"},
	} {
		assert.Check(t, is.Equal(checkpointLine(tc.cp, now), tc.want), tc.name)
	}
}

func TestRenderContainerCheckpoints(t *testing.T) {
	c := ContainerView{ContainerDetail: api.ContainerDetail{FleetContainer: api.FleetContainer{Name: "db.1", Service: "db", Replica: 1, Node: "h2"}}}
	var out strings.Builder
	assert.NilError(t, RenderContainer(&out, c))
	assert.Check(t, !strings.Contains(out.String(), "Checkpoints:"), "a service without checkpoints shows no line")

	c.Checkpoint = &api.CheckpointStatus{Every: "30s", Standby: "h3"}
	out.Reset()
	assert.NilError(t, RenderContainer(&out, c))
	assert.Check(t, is.Contains(out.String(), "Checkpoints:  every 30s to standby h3, none complete yet\n"))

	// --format json carries it through the embedded FleetContainer.
	b, err := json.Marshal(c)
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(b), `"checkpoint":{"every":"30s","standby":"h3"}`))
}
