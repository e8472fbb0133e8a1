// Package agentclient calls a node's agent over mutual TLS.
package agentclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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
	return call[api.Info](ctx, c, http.MethodGet, api.PathInfo, nil)
}

// Metrics returns the node's current figures.
func (c *Client) Metrics(ctx context.Context) (api.Metrics, error) {
	return call[api.Metrics](ctx, c, http.MethodGet, api.PathMetrics, nil)
}

// Ledger returns the node's cores, memory and fleet containers.
func (c *Client) Ledger(ctx context.Context) (api.Ledger, error) {
	return call[api.Ledger](ctx, c, http.MethodGet, api.PathLedger, nil)
}

// Create asks the agent to create and start one replica on its node.
func (c *Client) Create(ctx context.Context, req api.CreateRequest) (api.FleetContainer, error) {
	return call[api.FleetContainer](ctx, c, http.MethodPost, api.PathContainers, req)
}

// Remove removes a fleet container from the node.
func (c *Client) Remove(ctx context.Context, name string) error {
	_, err := call[struct{}](ctx, c, http.MethodDelete, api.PathContainer+url.PathEscape(name), nil)
	return err
}

// Resize changes a container's limits in place.
func (c *Client) Resize(ctx context.Context, name string, req api.ResizeRequest) (api.FleetContainer, error) {
	return call[api.FleetContainer](ctx, c, http.MethodPost, api.PathContainer+url.PathEscape(name)+api.ResizeSuffix, req)
}

// Detail returns a fleet container with its current usage.
func (c *Client) Detail(ctx context.Context, name string) (api.ContainerDetail, error) {
	return call[api.ContainerDetail](ctx, c, http.MethodGet, api.PathContainer+url.PathEscape(name), nil)
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

// Error is the agent's refusal of a request.
type Error struct {
	Node    string
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

func call[T any](ctx context.Context, c *Client, method, path string, in any) (T, error) {
	var out T
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return out, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+c.Addr+path, body)
	if err != nil {
		return out, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return out, fmt.Errorf("agent of %s at %s: %w", c.Node, c.Addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		if json.NewDecoder(resp.Body).Decode(&e) != nil || e.Message == "" {
			e.Message = "agent of " + c.Node + ": " + resp.Status
		}
		return out, &Error{Node: c.Node, Status: resp.StatusCode, Message: e.Message}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return out, fmt.Errorf("agent of %s: bad reply: %w", c.Node, err)
	}
	return out, nil
}
