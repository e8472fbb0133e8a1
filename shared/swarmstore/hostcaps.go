package swarmstore

import (
	"context"
	"slices"
	"strings"

	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/labels"
)

// hostCaps reads the host-capabilities label: nil when no agent has
// reported them yet.
func hostCaps(nodeLabels map[string]string) []string {
	v, ok := nodeLabels[labels.HostCaps]
	switch {
	case !ok:
		return nil
	case v == "":
		return []string{}
	}
	return strings.Split(v, ",")
}

// SetHostCaps records on the swarm node which of the capabilities the
// agent asks for the node's root has, as its agent found them: init
// installs the next agent there with them at once.
func SetHostCaps(ctx context.Context, c client.APIClient, nodeID string, caps []string) error {
	res, err := c.NodeInspect(ctx, nodeID, client.NodeInspectOptions{})
	if err != nil {
		return err
	}
	spec := res.Node.Spec
	v := strings.Join(caps, ",")
	if old, ok := spec.Labels[labels.HostCaps]; ok && old == v {
		return nil
	}
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	spec.Labels[labels.HostCaps] = v
	_, err = c.NodeUpdate(ctx, nodeID, client.NodeUpdateOptions{Version: res.Node.Version, Spec: spec})
	return err
}

// SameHostCaps reports whether the recorded capabilities are caps.
func SameHostCaps(recorded, caps []string) bool {
	return recorded != nil && slices.Equal(recorded, caps)
}
