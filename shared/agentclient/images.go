package agentclient

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/docker-fleet/fleet/shared/api"
)

// Images asks which of some images the node's engine has (pulling the
// others first if req.Pull).
func (c *Client) Images(ctx context.Context, req api.ImagesRequest) (api.ImagesResponse, error) {
	return call[api.ImagesResponse](ctx, c, http.MethodPost, api.PathImages, req)
}

// ExpectImage tells the node to take an image of that ID from t.Node.
func (c *Client) ExpectImage(ctx context.Context, t api.ImageTransfer) error {
	_, err := call[struct{}](ctx, c, http.MethodPost, api.PathImageExpect, t)
	return err
}

// SendImage has the node push an image of its engine to t.Node (t.Addr).
// Not bounded by callTimeout: the answer comes once the whole image is
// loaded there, which takes as long as the image is large (the agents'
// connection notices a dead peer by itself).
func (c *Client) SendImage(ctx context.Context, t api.ImageTransfer) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+c.Addr+api.PathImageSend, bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	_, err = decodeReply[struct{}](c, resp)
	return err
}

// PushImage streams an image (`docker save` format) of that ID to the
// node, which must have been told to expect it from this one.
func (c *Client) PushImage(ctx context.Context, id string, image io.Reader) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+c.Addr+api.PathImagePush, image)
	if err != nil {
		return err
	}
	req.Header.Set(api.HeaderImageID, id)
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	_, err = decodeReply[struct{}](c, resp)
	return err
}
