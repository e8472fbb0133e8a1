package agentclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/docker-fleet/fleet/shared/api"
)

// LogStream is a container's logs as one node's agent streams them.
type LogStream struct {
	node string
	body io.ReadCloser
	dec  *json.Decoder
}

// Logs opens the logs of a container on the node (api.LogsSuffix): its
// live log, or with q.Kept the parts this node kept of it. Not bounded by
// callTimeout: a followed log lasts as long as the container; ctx ends it.
func (c *Client) Logs(ctx context.Context, name string, q api.LogsQuery) (*LogStream, error) {
	path := api.PathContainer + url.PathEscape(name) + api.LogsSuffix
	if v := q.Values().Encode(); v != "" {
		path += "?" + v
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+c.Addr+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	// Long lines are the container's own: no bound but the reader's.
	return &LogStream{node: c.Node, body: resp.Body, dec: json.NewDecoder(bufio.NewReaderSize(resp.Body, 64<<10))}, nil
}

// Next is the stream's next line; io.EOF once the agent ended it, or the
// agent's reason if it broke off.
func (s *LogStream) Next() (api.LogLine, error) {
	var l api.LogLine
	if err := s.dec.Decode(&l); err != nil {
		if errors.Is(err, io.EOF) {
			return l, io.EOF
		}
		return l, fmt.Errorf("logs from the agent of %s: %w", s.node, err)
	}
	if l.Error != "" {
		return l, fmt.Errorf("logs from the agent of %s: %s", s.node, l.Error)
	}
	if l.Node == "" {
		l.Node = s.node
	}
	return l, nil
}

// Close ends the stream.
func (s *LogStream) Close() error { return s.body.Close() }

// DropLogs removes the node's kept log parts of a container name.
func (c *Client) DropLogs(ctx context.Context, name string) error {
	_, err := call[struct{}](ctx, c, http.MethodDelete, api.PathContainer+url.PathEscape(name)+api.LogsSuffix, nil)
	return err
}

// CloseIdleConnections closes the client's connections that no request
// uses: a long-running caller (logs -f) that makes clients as it goes
// must not keep one open per client (through the relay, each is an exec).
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }
