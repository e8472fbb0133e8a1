package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/pki"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// ErrNoFleet means the engine's swarm holds no fleet (init was not run).
var ErrNoFleet = swarmstore.ErrNoFleet

// LoadCA reads the fleet CA from the swarm's raft store, and when it was
// stored (the fleet's birth).
func LoadCA(ctx context.Context, c client.APIClient) (*pki.CA, time.Time, error) {
	res, err := c.ConfigInspect(ctx, labels.CAConfigName, client.ConfigInspectOptions{})
	if errdefs.IsNotFound(err) {
		return nil, time.Time{}, ErrNoFleet
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("reading the fleet CA from the swarm: %w", err)
	}
	ca, err := pki.ParseBundle(res.Config.Spec.Data)
	return ca, res.Config.CreatedAt, err
}

// EnsureCA returns the fleet CA, creating it in the swarm the first time.
// Two inits racing both try to create it; the loser reads the winner's.
func EnsureCA(ctx context.Context, c client.APIClient) (ca *pki.CA, created bool, err error) {
	ca, _, err = LoadCA(ctx, c)
	if !errors.Is(err, ErrNoFleet) {
		return ca, false, err
	}
	ca, err = pki.NewCA("docker fleet CA")
	if err != nil {
		return nil, false, err
	}
	_, err = c.ConfigCreate(ctx, client.ConfigCreateOptions{Spec: swarm.ConfigSpec{
		Annotations: swarm.Annotations{Name: labels.CAConfigName, Labels: map[string]string{labels.CA: "1"}},
		Data:        ca.Bundle(),
	}})
	if errdefs.IsConflict(err) {
		ca, _, err = LoadCA(ctx, c)
		return ca, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("storing the fleet CA in the swarm: %w", err)
	}
	return ca, true, nil
}
