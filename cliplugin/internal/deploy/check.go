package deploy

import (
	"context"
	"fmt"

	"github.com/docker-fleet/fleet/shared/api"
)

// CheckResult is `migrate --check`'s verdict: the source agent's, and
// where the scheduler would send the container.
type CheckResult struct {
	api.CheckResult
	To string `json:"to,omitempty"`
}

// Check says whether the container could migrate now, changing nothing:
// its node's agent looks at its processes for what CRIU cannot checkpoint,
// and the scheduler must find it a destination.
func (d *Deployer) Check(ctx context.Context, name, to string) (*CheckResult, error) {
	inv, c, src, err := d.locate(ctx, name)
	if err != nil {
		return nil, err
	}
	res, err := src.Agent.Check(ctx, api.CheckRequest{Container: c.Name})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.Hostname, err)
	}
	out := &CheckResult{CheckResult: res}
	dst, err := destination(inv, c, src, to, d.constraintsOf(ctx, c.Service))
	if err != nil {
		out.OK = false
		out.Problems = append(out.Problems, err.Error())
	} else {
		out.To = dst.Hostname
	}
	return out, nil
}
