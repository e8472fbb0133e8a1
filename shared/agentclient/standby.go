package agentclient

import (
	"context"
	"io"
	"net/http"

	"github.com/docker-fleet/fleet/shared/api"
)

// Rejoin has a node the leader removed from the swarm while it was dead
// join it again.
func (c *Client) Rejoin(ctx context.Context, req api.RejoinRequest) (api.RejoinResult, error) {
	return call[api.RejoinResult](ctx, c, http.MethodPost, api.PathRejoin, req)
}

// StandbyAssign tells the node where to send one container's checkpoints.
func (c *Client) StandbyAssign(ctx context.Context, req api.StandbyAssign) error {
	_, err := call[struct{}](ctx, c, http.MethodPost, api.PathStandbyAssign, req)
	return err
}

// StandbyExpect tells the node to take one container's checkpoints.
func (c *Client) StandbyExpect(ctx context.Context, req api.StandbyExpect) error {
	_, err := call[struct{}](ctx, c, http.MethodPost, api.PathStandbyExpect, req)
	return err
}

// StandbyDrop has the node forget its standby copy of a container.
func (c *Client) StandbyDrop(ctx context.Context, req api.StandbyDrop) error {
	_, err := call[struct{}](ctx, c, http.MethodPost, api.PathStandbyDrop, req)
	return err
}

// StandbyRestore has the node restore a dead node's container from its
// standby copy.
func (c *Client) StandbyRestore(ctx context.Context, req api.StandbyRestoreRequest) (api.FleetContainer, error) {
	return call[api.FleetContainer](ctx, c, http.MethodPost, api.PathStandbyRestore, req)
}

// StandbyReceive sends one checkpoint to the container's standby node:
// hdr describes it, body is its stream and sum its CRC-32C once the body
// is read whole.
func (c *Client) StandbyReceive(ctx context.Context, hdr api.ReceiveHeader, body io.Reader, sum func() string) error {
	resp, err := c.postStream(ctx, api.PathStandbyReceive, hdr, body, sum, false)
	if err != nil {
		return err
	}
	_, err = decodeReply[struct{}](c, resp)
	return err
}
