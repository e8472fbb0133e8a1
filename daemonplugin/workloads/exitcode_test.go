package workloads

import (
	"context"
	"testing"

	"github.com/moby/moby/api/types/container"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestFleetContainerExitCode(t *testing.T) {
	m := &Manager{Node: "h1"}
	inspected := func(status container.ContainerState, code int) container.InspectResponse {
		return container.InspectResponse{Name: "/job.1", Config: &container.Config{}, HostConfig: &container.HostConfig{},
			State: &container.State{Status: status, ExitCode: code}}
	}
	for _, status := range []container.ContainerState{container.StateExited, container.StateDead} {
		fc := m.fleetContainer(context.Background(), inspected(status, 3))
		assert.Assert(t, fc.ExitCode != nil, status)
		assert.Check(t, is.Equal(*fc.ExitCode, 3))
	}
	// A running container's code is its previous run's: not told.
	fc := m.fleetContainer(context.Background(), inspected(container.StateRunning, 3))
	assert.Check(t, is.Nil(fc.ExitCode))
	// Code 0 is told too: it is what service_completed_successfully waits for.
	fc = m.fleetContainer(context.Background(), inspected(container.StateExited, 0))
	assert.Check(t, fc.ExitCode != nil && *fc.ExitCode == 0)
}
