// Package agentclient calls a node's agent over mutual TLS.
package agentclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/pki"
)

// Client talks to one agent.
type Client struct {
	Node string
	Addr string
	http *http.Client
}

// New returns a client for the agent of node (its hostname, which its
// certificate names) listening at host:port.
func New(creds pki.Pair, node, host string, port int) (*Client, error) {
	tlsCfg, err := creds.ClientConfig(node)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	return &Client{
		Node: node,
		Addr: addr,
		http: &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				TLSClientConfig:     tlsCfg,
				DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
				TLSHandshakeTimeout: 5 * time.Second,
			},
		},
	}, nil
}

// Info returns the node's engine, CRIU and migration readiness.
func (c *Client) Info(ctx context.Context) (api.Info, error) {
	var v api.Info
	return v, c.get(ctx, api.PathInfo, &v)
}

// Metrics returns the node's current figures.
func (c *Client) Metrics(ctx context.Context) (api.Metrics, error) {
	var v api.Metrics
	return v, c.get(ctx, api.PathMetrics, &v)
}

// WaitInfo polls Info until the agent answers or timeout passes: a freshly
// enabled agent needs a moment to listen.
func (c *Client) WaitInfo(ctx context.Context, timeout time.Duration) (api.Info, error) {
	deadline := time.Now().Add(timeout)
	for {
		info, err := c.Info(ctx)
		if err == nil || time.Now().After(deadline) {
			return info, err
		}
		select {
		case <-ctx.Done():
			return info, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func (c *Client) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+c.Addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("agent of %s at %s: %w", c.Node, c.Addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		if json.NewDecoder(resp.Body).Decode(&e) == nil && e.Message != "" {
			return fmt.Errorf("agent of %s: %s", c.Node, e.Message)
		}
		return fmt.Errorf("agent of %s: %s", c.Node, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("agent of %s: bad reply: %w", c.Node, err)
	}
	return nil
}
