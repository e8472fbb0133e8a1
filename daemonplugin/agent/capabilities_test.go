package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
)

// fakeProc is a procfs with the agent's shim (its parent) holding host and
// the agent holding own.
func fakeProc(t *testing.T, host, own uint64) string {
	proc := t.TempDir()
	for dir, status := range map[string]string{
		strconv.Itoa(os.Getppid()): fmt.Sprintf("Name:\tcontainerd-shim\nCapInh:\t0000000000000000\nCapPrm:\t%016x\nCapEff:\t%016x\n", host, host),
		"self":                     fmt.Sprintf("Name:\tfleet-agent\nCapPrm:\t%016x\nCapEff:\t%016x\n", own, own),
	} {
		assert.NilError(t, os.MkdirAll(filepath.Join(proc, dir), 0o755))
		assert.NilError(t, os.WriteFile(filepath.Join(proc, dir, "status"), []byte(status), 0o644))
	}
	return proc
}

// mask is the capability set of names.
func mask(names ...string) uint64 {
	var m uint64
	for _, n := range names {
		m |= 1 << capNumbers[n]
	}
	return m
}

func TestReadCapabilitiesOnAHostWhoseRootHasThemAll(t *testing.T) {
	all := append(append([]string{}, api.RequiredCaps...), api.OptionalCaps...)
	caps := readCapabilities(fakeProc(t, 0x1ffffffffff, mask(all...)))
	assert.Check(t, is.DeepEqual(caps.Host, all))
	assert.Check(t, is.DeepEqual(caps.Agent, all))
	fleetCRIU := api.CRIUInfo{Version: "4.2.1", Patches: []string{api.CRIUPatchRlimits, api.CRIUPatchLockNetns}}
	assert.Check(t, is.Len(CapabilityLimits(caps, fleetCRIU), 0), "nothing this host cannot do")
	stock := CapabilityLimits(caps, api.CRIUInfo{Version: "4.2.1"})
	assert.Assert(t, is.Len(stock, 1), "a stock CRIU restores unlocked")
	assert.Check(t, is.Contains(stock[0], "gets a reset"))
	assert.Check(t, readsForeignLimits(caps, api.CRIUInfo{Version: "4.2.1"}), "a stock CRIU reads other users' limits with CAP_SYS_RESOURCE")
}

func TestReadCapabilitiesOnAHostWithoutSysResource(t *testing.T) {
	// This machine: root's bounding set has every capability but
	// CAP_SYS_RESOURCE; init installed the agent with what root has.
	withoutRes := uint64(0x1fffeffffff)
	var own []string
	for _, n := range append(append([]string{}, api.RequiredCaps...), api.OptionalCaps...) {
		if n != api.CapSysResource {
			own = append(own, n)
		}
	}
	caps := readCapabilities(fakeProc(t, withoutRes, mask(own...)))
	assert.Check(t, is.DeepEqual(caps.Host, own))

	stock := api.CRIUInfo{Version: "4.2.1"}
	limits := CapabilityLimits(caps, stock)
	assert.Assert(t, is.Len(limits, 2))
	assert.Check(t, is.Contains(limits[0], "root lacks CAP_SYS_RESOURCE: containers whose processes are not root cannot be checkpointed"))
	assert.Check(t, is.Contains(limits[1], "gets a reset"))
	assert.Check(t, !readsForeignLimits(caps, stock))

	patched := api.CRIUInfo{Version: "4.2.1", Patches: []string{api.CRIUPatchRlimits, api.CRIUPatchLockNetns}}
	limits = CapabilityLimits(caps, patched)
	assert.Assert(t, is.Len(limits, 1))
	assert.Check(t, is.Contains(limits[0], "root lacks CAP_SYS_RESOURCE: containers whose processes are not root migrate only with the fleet's CRIU build"))
	assert.Check(t, readsForeignLimits(caps, patched))
}

func TestCapabilityLimitsOfAnAgentInstalledWithLess(t *testing.T) {
	caps := readCapabilities(fakeProc(t, 0x1ffffffffff, mask(api.RequiredCaps...)))
	limits := CapabilityLimits(caps, api.CRIUInfo{Version: "4.2.1", Patches: []string{api.CRIUPatchLockNetns}})
	assert.Assert(t, is.Len(limits, 2))
	assert.Check(t, is.Contains(limits[0], "the agent runs without CAP_SYS_RESOURCE (`docker fleet init` installs it with it)"))
	assert.Check(t, is.Contains(limits[1], "CAP_IPC_OWNER"))
	assert.Check(t, is.Contains(limits[1], "SysV shared memory"))
}

func TestReadCapabilitiesWithoutProcfs(t *testing.T) {
	caps := readCapabilities(t.TempDir())
	assert.Check(t, is.Len(caps.Host, 0))
	assert.Check(t, is.Len(CapabilityLimits(caps, api.CRIUInfo{}), 0), "an agent that cannot tell claims nothing")
}
