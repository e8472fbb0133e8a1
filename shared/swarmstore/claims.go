package swarmstore

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/labels"
)

// A replica's name S.N is claimed fleet-wide before its container is made:
// a swarm config named for it, which the swarm creates once, so that two
// CLIs scaling one service never both make S.N. The claim goes with the
// replica.

func claimConfig(replica string) string { return labels.ReplicaClaimPrefix + replica }

// staleClaim is the age past which a claim without its container is taken
// to be left by a CLI that died between the claim and the create: well
// past what a create takes, an image pull included.
const staleClaim = 15 * time.Minute

// ClaimReplica claims replica n of service, to be made on node; false if
// another holds it.
// exists says whether the replica's container exists now: a claim left
// without one for staleClaim is taken over.
func ClaimReplica(ctx context.Context, c client.APIClient, service string, n int, node string, exists func(name string) bool) (bool, error) {
	name := service + "." + strconv.Itoa(n)
	for attempt := 0; attempt < 2; attempt++ {
		_, err := c.ConfigCreate(ctx, client.ConfigCreateOptions{Spec: swarm.ConfigSpec{
			Annotations: swarm.Annotations{Name: claimConfig(name), Labels: map[string]string{labels.ReplicaOf: service, labels.ClaimedFor: node}},
			Data:        []byte(name),
		}})
		if err == nil {
			return true, nil
		}
		if !errdefs.IsConflict(err) {
			return false, err
		}
		res, ierr := c.ConfigInspect(ctx, claimConfig(name), client.ConfigInspectOptions{})
		if ierr != nil || exists(name) || time.Since(res.Config.CreatedAt) < staleClaim {
			return false, nil
		}
		// Removed by its ID: a fresh claim made meanwhile stays.
		if _, err := c.ConfigRemove(ctx, res.Config.ID, client.ConfigRemoveOptions{}); err != nil && !errdefs.IsNotFound(err) {
			return false, err
		}
	}
	return false, nil
}

// ReleaseReplica drops the claim of a replica that is gone.
func ReleaseReplica(ctx context.Context, c client.APIClient, replica string) error {
	return removeConfig(ctx, c, claimConfig(replica))
}

// ReleaseReplicas drops every claim of a service that is gone.
func ReleaseReplicas(ctx context.Context, c client.APIClient, service string) error {
	res, err := c.ConfigList(ctx, client.ConfigListOptions{Filters: make(client.Filters).Add("label", labels.ReplicaOf+"="+service)})
	if err != nil {
		return err
	}
	for _, cfg := range res.Items {
		if _, err := c.ConfigRemove(ctx, cfg.ID, client.ConfigRemoveOptions{}); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// Claim is a claimed replica name and the node it was made for.
type Claim struct {
	Name string
	Node string
}

// Claims lists every claimed replica name.
func Claims(ctx context.Context, c client.APIClient) ([]Claim, error) {
	res, err := c.ConfigList(ctx, client.ConfigListOptions{Filters: make(client.Filters).Add("label", labels.ReplicaOf)})
	if err != nil {
		return nil, err
	}
	out := make([]Claim, 0, len(res.Items))
	for _, cfg := range res.Items {
		out = append(out, Claim{Name: strings.TrimPrefix(cfg.Spec.Name, labels.ReplicaClaimPrefix), Node: cfg.Spec.Labels[labels.ClaimedFor]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
