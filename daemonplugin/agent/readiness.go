package agent

import (
	"fmt"

	"github.com/docker-fleet/fleet/daemonplugin/criucheck"
	"github.com/docker-fleet/fleet/shared/api"
)

// Readiness says whether live migration can work on a node with this engine
// and CRIU, and what to change when it cannot.
func Readiness(engine api.EngineInfo, criu api.CRIUInfo, criuVersion int) api.Readiness {
	var problems []string
	if !engine.Experimental {
		problems = append(problems, `engine experimental mode is off: set "experimental": true in daemon.json and restart dockerd`)
	}
	switch {
	case criu.Version == "" && criu.Error != "":
		problems = append(problems, fmt.Sprintf("%s: install CRIU %s or newer", criu.Error, api.MinCRIUString))
	case criuVersion < api.MinCRIU:
		problems = append(problems, fmt.Sprintf("CRIU %s is too old: migration needs %s or newer (3.17 fails on the vDSO, 4.1 on TCP sockets)",
			criucheck.FormatVersion(criuVersion), api.MinCRIUString))
	case criu.Error != "":
		problems = append(problems, "CRIU "+criu.Version+": "+criu.Error)
	}
	return api.Readiness{Ready: len(problems) == 0, Problems: problems}
}
