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
	inv, err := d.Fleet.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	c, src, ok := inv.Find(name)
	if !ok {
		if uerr := inv.Unreachable(); uerr != nil {
			return nil, fmt.Errorf("no fleet container %q on the nodes that answer (%v)", name, uerr)
		}
		return nil, fmt.Errorf("no fleet container %q", name)
	}
	res, err := src.Agent.Check(ctx, api.CheckRequest{Container: c.Name})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.Hostname, err)
	}
	out := &CheckResult{CheckResult: res}
	dst, err := destination(inv, c, src, to)
	if err != nil {
		out.OK = false
		out.Problems = append(out.Problems, err.Error())
	} else {
		out.To = dst.Hostname
	}
	return out, nil
}
