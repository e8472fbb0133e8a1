package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/pki"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// Revocations reads the fleet's revocation list from the swarm: one config
// per revocation (configs cannot change; the list only grows).
func (f *Fleet) Revocations(ctx context.Context) (pki.Revocations, error) {
	res, err := f.Manager.ConfigList(ctx, client.ConfigListOptions{
		Filters: make(client.Filters).Add("label", labels.Revocation),
	})
	if err != nil {
		return nil, fmt.Errorf("reading the fleet's revocations: %w", err)
	}
	var out pki.Revocations
	for _, c := range res.Items {
		var r pki.Revocation
		if err := json.Unmarshal(c.Spec.Data, &r); err != nil {
			return nil, fmt.Errorf("revocation %s: %w", c.Spec.Name, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// Revoke refuses, fleet-wide and at once, every certificate node has had:
// recorded in the swarm, then given to every agent that answers (init gives
// it to the others when they come back).
func (f *Fleet) Revoke(ctx context.Context, node string) error {
	r := pki.Revocation{Name: node, Role: pki.RoleNode, At: time.Now().UTC()}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = f.Manager.ConfigCreate(ctx, client.ConfigCreateOptions{Spec: swarm.ConfigSpec{
		Annotations: swarm.Annotations{
			Name:   labels.RevocationConfigPrefix + node + "." + strconv.FormatInt(r.At.UnixNano(), 36),
			Labels: map[string]string{labels.Revocation: node},
		},
		Data: b,
	}})
	if err != nil {
		return fmt.Errorf("recording the revocation of %s: %w", node, err)
	}
	nodes, err := swarmstore.Nodes(ctx, f.Manager)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range nodes {
		if n.Hostname == node || n.AgentPort == 0 {
			continue
		}
		if err := f.PushRevocations(ctx, n); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s is revoked in the swarm, but not every agent has heard yet (run `docker fleet init` when they are back): %v", node, errs)
	}
	return nil
}

// PushRevocations gives node n's agent the fleet's revocation list.
func (f *Fleet) PushRevocations(ctx context.Context, n swarmstore.Node) error {
	rs, err := f.Revocations(ctx)
	if err != nil {
		return err
	}
	agent, err := f.Agent(n)
	if err != nil {
		return err
	}
	if err := agent.SetRevocations(ctx, rs); err != nil {
		return fmt.Errorf("giving %s the revocations: %w", n.Hostname, err)
	}
	return nil
}
