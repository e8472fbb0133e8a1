package describe

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
)

func TestGroupLimits(t *testing.T) {
	got := GroupLimits([]NodeLimits{
		{"h1", []string{"root lacks A", "root lacks B"}},
		{"h2", nil},
		{"h3", []string{"root lacks A"}},
	})
	assert.Check(t, is.DeepEqual(got, []string{"h1, h3: root lacks A", "h1: root lacks B"}))
	assert.Check(t, is.Len(GroupLimits(nil), 0))
}

func TestCapsLine(t *testing.T) {
	all := append(append([]string{}, api.RequiredCaps...), api.OptionalCaps...)
	assert.Check(t, is.Equal(capsLine(api.Capabilities{Host: all, Agent: all}),
		"the required ones, CAP_SYS_RESOURCE, CAP_IPC_OWNER, CAP_CHECKPOINT_RESTORE"))
	noRes := append(append([]string{}, api.RequiredCaps...), "CAP_IPC_OWNER", "CAP_CHECKPOINT_RESTORE")
	assert.Check(t, is.Equal(capsLine(api.Capabilities{Host: noRes, Agent: noRes}),
		"the required ones, CAP_IPC_OWNER, CAP_CHECKPOINT_RESTORE; root lacks CAP_SYS_RESOURCE"))
	assert.Check(t, is.Equal(capsLine(api.Capabilities{Host: all, Agent: noRes}),
		"the required ones, CAP_IPC_OWNER, CAP_CHECKPOINT_RESTORE; the agent lacks CAP_SYS_RESOURCE (`docker fleet init` installs it with them)"))
	assert.Check(t, is.Contains(capsLine(api.Capabilities{}), "unknown"))
}
