package commands

import (
	"bytes"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/cliplugin/internal/deploy"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/moves"
	"github.com/docker-fleet/fleet/shared/scheduler"
)

func planned() *deploy.Rebalanced {
	return &deploy.Rebalanced{Strategy: "spread", DryRun: true, Plan: scheduler.Plan{
		Moves: []scheduler.Move{
			{Container: "web.6", Service: "web", From: "h1", To: "h2", Why: "evens out web: 6 on h1, 0 on h2"},
			{Container: "web.5", Service: "web", From: "h1", To: "h3", Why: "evens out web: 5 on h1, 0 on h3"},
		},
		LeftOut:    []scheduler.LeftOut{{Container: "db.1", Service: "db", Node: "h1", Why: "placed with --node h1"}},
		Shortfalls: []scheduler.Shortfall{{Of: "web", Why: "4 on h1, 1 on h2: its replicas on h1 cannot move"}},
		Capped:     true,
	}}
}

func TestRenderRebalancePlan(t *testing.T) {
	var out bytes.Buffer
	assert.NilError(t, renderRebalanced(&out, planned(), 2))
	assert.Check(t, is.Equal(out.String(), `CONTAINER  FROM  TO  WHY
web.6      h1    h2  evens out web: 6 on h1, 0 on h2
web.5      h1    h3  evens out web: 5 on h1, 0 on h3

LEFT OUT  NODE  WHY
db.1      h1    placed with --node h1

SHORT OF THE GOAL  WHY
web                4 on h1, 1 on h2: its replicas on h1 cannot move

(stopped at --max-moves 2: run rebalance again for the next moves)

(dry run: nothing was moved)
`))

	out.Reset()
	assert.NilError(t, writeFormatted(&out, `{{range .Moves}}{{.Container}} {{.From}}>{{.To}} {{end}}`, planned(), nil))
	assert.Check(t, is.Equal(out.String(), "web.6 h1>h2 web.5 h1>h3 \n"))
	out.Reset()
	assert.NilError(t, writeFormatted(&out, "json", planned(), nil))
	for _, key := range []string{`"strategy": "spread"`, `"moves": [`, `"leftOut": [`, `"why": "placed with --node h1"`, `"capped": true`, `"dryRun": true`} {
		assert.Check(t, is.Contains(out.String(), key))
	}
}

func TestRenderRebalanceResults(t *testing.T) {
	r := planned()
	r.DryRun, r.Capped, r.LeftOut, r.Shortfalls = false, false, nil, nil
	r.Results = []moves.Result{
		{Move: r.Moves[0], Migration: &api.MigrateResult{Container: "web.6", From: "h1", To: "h2", Downtime: 0.31}},
		{Move: r.Moves[1], Error: "web.5 cannot migrate, it keeps running on h1 untouched: io_uring"},
	}
	var out bytes.Buffer
	assert.NilError(t, renderRebalanced(&out, r, 0))
	assert.Check(t, is.Equal(out.String(), `CONTAINER  FROM  TO  RESULT                 WHY
web.6      h1    h2  moved, downtime 0.31s  evens out web: 6 on h1, 0 on h2
web.5      h1    h3  failed (stays on h1)   evens out web: 5 on h1, 0 on h3
`))

	out.Reset()
	assert.NilError(t, renderRebalanced(&out, &deploy.Rebalanced{Strategy: "spread"}, 0))
	assert.Check(t, is.Equal(out.String(), "nothing to move: every service is spread, no two nodes more than one replica apart\n"))
	out.Reset()
	assert.NilError(t, renderRebalanced(&out, &deploy.Rebalanced{Drained: []string{"h3"}}, 0))
	assert.Check(t, is.Equal(out.String(), "nothing to move off h3\n"))
}

// Flags are checked before the fleet is asked anything.
func TestRebalanceFlagErrors(t *testing.T) {
	for args, want := range map[string]string{
		"--parallel 0":   "--parallel 0: at least 1",
		"--max-moves -1": "--max-moves -1: 0 (no limit) or more",
	} {
		cmd := newRebalanceCommand(nil)
		cmd.SetArgs(strings.Fields(args))
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		cmd.SilenceUsage = true
		assert.Check(t, is.Error(cmd.Execute(), want), args)
	}
	cmd := newDrainCommand(nil)
	cmd.SetArgs([]string{"h3", "--parallel", "0"})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	cmd.SilenceUsage = true
	assert.Check(t, is.Error(cmd.Execute(), "--parallel 0: at least 1"))
}
