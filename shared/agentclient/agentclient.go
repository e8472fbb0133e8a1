// Package agentclient calls a node's agent over mutual TLS: the CLI does,
// and so does one agent calling another during a migration.
package agentclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/containerd/errdefs/pkg/errhttp"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/pki"
)

// Client talks to one agent.
type Client struct {
	Node string
	Addr string
	http *http.Client
}

// DialFunc opens the byte stream to an agent's address (host:port): a TCP
// connection, or one carried over another channel (a relay through the
// Docker API). TLS runs on top of it either way.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Credentials make the TLS configuration that dials the agent of
// serverName: a static pki.Pair (the CLI) or a node's rotating keyring.
type Credentials interface {
	ClientConfig(serverName string) (*tls.Config, error)
}

// KeepAlive probes idle agent connections often enough that a cut link
// ends them within seconds rather than minutes: a destination waits
// silently while its source checkpoints, and a source while its
// destination restores, so no read deadline can tell a slow peer from a
// lost one; the peer's kernel answering probes can. Both ends use it.
var KeepAlive = net.KeepAliveConfig{Enable: true, Idle: 3 * time.Second, Interval: 2 * time.Second, Count: 3}

// New returns a client for the agent of node (its hostname, which its
// certificate names) listening at host:port. A nil dial connects over TCP.
func New(creds Credentials, node, host string, port int, dial DialFunc) (*Client, error) {
	tlsCfg, err := creds.ClientConfig(node)
	if err != nil {
		return nil, err
	}
	if dial == nil {
		dial = (&net.Dialer{Timeout: 5 * time.Second, KeepAliveConfig: KeepAlive}).DialContext
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	return &Client{
		Node: node,
		Addr: addr,
		// No overall timeout: migrations stream for as long as they need.
		// Plain calls get one from call; streams watch their own progress.
		http: &http.Client{
			Transport: &http.Transport{
				TLSClientConfig:     tlsCfg,
				DialContext:         dial,
				TLSHandshakeTimeout: 5 * time.Second,
				// A receive's body waits for the destination's 100
				// Continue (Receive); its source bounds that wait itself
				// (and cuts the request), this only in case it did not.
				ExpectContinueTimeout: 5 * time.Minute,
				// Migration streams: fewer, fuller TLS records and writes.
				WriteBufferSize: 256 << 10,
				ReadBufferSize:  64 << 10,
			},
		},
	}, nil
}

// Info returns the node's engine, CRIU and migration readiness.
func (c *Client) Info(ctx context.Context) (api.Info, error) {
	return call[api.Info](ctx, c, http.MethodGet, api.PathInfo, nil)
}

// RecentInfo is Info with the engine's own facts (its info and version)
// as the agent last read them, if that was no longer than maxAge ago
// (Cache-Control: max-age): what shows the fleet, not what decides. An
// older agent answers afresh.
func (c *Client) RecentInfo(ctx context.Context, maxAge time.Duration) (api.Info, error) {
	h := http.Header{"Cache-Control": {"max-age=" + strconv.Itoa(int(maxAge.Seconds()))}}
	return callWith[api.Info](ctx, c, h, http.MethodGet, api.PathInfo, nil)
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

// Fence asks a node back from the dead to remove its copies of containers
// that were relocated.
func (c *Client) Fence(ctx context.Context, req api.FenceRequest) (api.FenceResult, error) {
	return call[api.FenceResult](ctx, c, http.MethodPost, api.PathFence, req)
}

// Remove removes a fleet container from the node.
func (c *Client) Remove(ctx context.Context, name string) error {
	_, err := call[struct{}](ctx, c, http.MethodDelete, api.PathContainer+url.PathEscape(name), nil)
	return err
}

// Retire takes a replica out of its networks, stops it gracefully and
// removes it (a rolling update's replacement).
func (c *Client) Retire(ctx context.Context, name string) error {
	_, err := call[struct{}](ctx, c, http.MethodDelete, api.PathContainer+url.PathEscape(name)+"?"+api.QueryRetire+"=1", nil)
	return err
}

// Promote carries out one step of a successor's promotion (a start-first
// update).
func (c *Client) Promote(ctx context.Context, name string, req api.PromoteRequest) (api.FleetContainer, error) {
	return call[api.FleetContainer](ctx, c, http.MethodPost, api.PathContainer+url.PathEscape(name)+api.PromoteSuffix, req)
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

// Unwrap gives the refusal's kind (containerd/errdefs: errdefs.IsConflict
// and the like), from the status the agent mapped it to.
func (e *Error) Unwrap() error { return errhttp.ToNative(e.Status) }

// unreachable is an agent that did not answer (refused, filtered, TLS
// failed): of kind errdefs.ErrUnavailable, so that callers can wait for
// one that is starting.
type unreachable struct{ error }

func (unreachable) Unavailable()    {}
func (e unreachable) Unwrap() error { return e.error }

// callTimeout bounds a plain request (not a stream).
const callTimeout = 2 * time.Minute

func call[T any](ctx context.Context, c *Client, method, path string, in any) (T, error) {
	return callMigration[T](ctx, c, "", method, path, in)
}

// callMigration is call on behalf of an announced migration (node to node).
func callMigration[T any](ctx context.Context, c *Client, migration, method, path string, in any) (T, error) {
	var h http.Header
	if migration != "" {
		h = http.Header{api.HeaderMigration: {migration}}
	}
	return callWith[T](ctx, c, h, method, path, in)
}

// callWith is call with headers.
func callWith[T any](ctx context.Context, c *Client, header http.Header, method, path string, in any) (T, error) {
	var out T
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return out, err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "https://"+c.Addr+path, body)
	if err != nil {
		return out, err
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := c.do(req)
	if err != nil {
		return out, err
	}
	return decodeReply[T](c, resp)
}

// decodeReply reads an agent's JSON answer.
func decodeReply[T any](c *Client, resp *http.Response) (T, error) {
	var out T
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return out, fmt.Errorf("agent of %s: bad reply: %w", c.Node, err)
	}
	return out, nil
}

// do sends a request and turns a refusal into an *Error.
func (c *Client) do(req *http.Request) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, unreachable{fmt.Errorf("agent of %s at %s: %w", c.Node, c.Addr, err)}
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e api.Error
		if json.NewDecoder(resp.Body).Decode(&e) != nil || e.Message == "" {
			e.Message = "agent of " + c.Node + ": " + resp.Status
		}
		return nil, &Error{Node: c.Node, Status: resp.StatusCode, Message: e.Message}
	}
	return resp, nil
}

// Decide tells a migration's destination the source's decision.
func (c *Client) Decide(ctx context.Context, migration string, d api.Decision) error {
	_, err := callMigration[struct{}](ctx, c, migration, http.MethodPost, api.PathDecision, d)
	return err
}

// Outcome asks the other side of a migration what it knows of it.
func (c *Client) Outcome(ctx context.Context, migration string) (api.Outcome, error) {
	return callMigration[api.Outcome](ctx, c, migration, http.MethodPost, api.PathOutcome, api.OutcomeRequest{ID: migration})
}

// Expect announces a migration to its destination.
func (c *Client) Expect(ctx context.Context, e api.Expectation) error {
	_, err := call[struct{}](ctx, c, http.MethodPost, api.PathExpect, e)
	return err
}

// NodeCSR asks the agent for a certificate request for a new key.
func (c *Client) NodeCSR(ctx context.Context) (api.CSRResponse, error) {
	return call[api.CSRResponse](ctx, c, http.MethodPost, api.PathNodeCSR, struct{}{})
}

// InstallCert gives the agent the certificate signed for its request.
func (c *Client) InstallCert(ctx context.Context, cert []byte) error {
	_, err := call[struct{}](ctx, c, http.MethodPut, api.PathNodeCert, api.CertRequest{Cert: cert})
	return err
}

// SetRevocations gives the agent the fleet's revocation list.
func (c *Client) SetRevocations(ctx context.Context, rs pki.Revocations) error {
	_, err := call[struct{}](ctx, c, http.MethodPut, api.PathRevocations, rs)
	return err
}

// Prepare asks a destination whether it can take a container.
func (c *Client) Prepare(ctx context.Context, migration string, req api.PrepareRequest) (api.PrepareResponse, error) {
	return callMigration[api.PrepareResponse](ctx, c, migration, http.MethodPost, api.PathPrepare, req)
}

// LoadImage streams an image (`docker save` format) to the node's engine.
func (c *Client) LoadImage(ctx context.Context, migration string, image io.Reader) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+c.Addr+api.PathImageLoad, image)
	if err != nil {
		return err
	}
	req.Header.Set(api.HeaderMigration, migration)
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// Receive streams a container to the node's agent, which restores it. sum
// is called once body is exhausted, for the checksum the destination checks.
func (c *Client) Receive(ctx context.Context, hdr api.ReceiveHeader, body io.Reader, sum func() string) (api.ReceiveResult, error) {
	// The destination asks for the body once it is ready for it (its twin
	// made): the source freezes the container only then.
	resp, err := c.postStream(ctx, api.PathReceive, hdr, body, sum, true)
	if err != nil {
		return api.ReceiveResult{}, err
	}
	return decodeReply[api.ReceiveResult](c, resp)
}

// postStream posts a container's stream: hdr in its header, body chunked,
// and sum, the body's CRC-32C, in the trailer once the body is read whole.
func (c *Client) postStream(ctx context.Context, path string, hdr api.ReceiveHeader, body io.Reader, sum func() string, expectContinue bool) (*http.Response, error) {
	h, err := json.Marshal(hdr)
	if err != nil {
		return nil, err
	}
	trailer := http.Header{api.TrailerCRC32C: nil}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+c.Addr+path,
		&trailerBody{r: body, done: func() { trailer.Set(api.TrailerCRC32C, sum()) }})
	if err != nil {
		return nil, err
	}
	req.ContentLength = -1
	req.Trailer = trailer
	req.Header.Set(api.HeaderReceive, base64.StdEncoding.EncodeToString(h))
	if hdr.ID != "" {
		req.Header.Set(api.HeaderMigration, hdr.ID)
	}
	if expectContinue {
		req.Header.Set("Expect", "100-continue")
	}
	return c.do(req)
}

// trailerBody calls done when the body it wraps is exhausted, before the
// client sends the trailers.
type trailerBody struct {
	r    io.Reader
	done func()
	once bool
}

func (t *trailerBody) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err == io.EOF && !t.once {
		t.once = true
		t.done()
	}
	return n, err
}

// Migrate asks the node's agent to migrate one of its containers; events
// are passed on as they arrive. The last event carries the result or error.
func (c *Client) Migrate(ctx context.Context, req api.MigrateRequest, onEvent func(api.MigrateEvent)) (*api.MigrateResult, error) {
	return c.events(ctx, api.PathMigrate, req, onEvent)
}

// Follow follows a migration the node's agent drives or drove, from its
// first event to its end.
func (c *Client) Follow(ctx context.Context, id string, onEvent func(api.MigrateEvent)) (*api.MigrateResult, error) {
	return c.events(ctx, api.PathFollow, api.FollowRequest{ID: id}, onEvent)
}

// events posts in to path and reads the migration events it streams back.
func (c *Client) events(ctx context.Context, path string, in any, onEvent func(api.MigrateEvent)) (*api.MigrateResult, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+c.Addr+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	resp, err := c.do(hreq)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev api.MigrateEvent
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("lost the source agent of %s during the migration: %w (its agent finishes or undoes the migration on its own, from its journal: `docker fleet describe` shows where the container runs)", c.Node, err)
		}
		if onEvent != nil {
			onEvent(ev)
		}
		switch {
		case ev.Error != "":
			return nil, errors.New(ev.Error)
		case ev.Result != nil:
			return ev.Result, nil
		}
	}
}

// Leave asks the node's agent to take its node out of the swarm and remove
// itself from its engine.
func (c *Client) Leave(ctx context.Context, req api.LeaveRequest) error {
	_, err := call[struct{}](ctx, c, http.MethodPost, api.PathLeave, req)
	return err
}

// Drain has the agent make way for an upgrade: it takes no new work and
// answers once what it has in flight ended, or after req.Wait with what
// has not (api.PathDrain).
func (c *Client) Drain(ctx context.Context, req api.DrainRequest) (api.DrainResult, error) {
	return call[api.DrainResult](ctx, c, http.MethodPost, api.PathDrain, req)
}

// SetGuard turns the node's guard on or off: its engine consulting the
// agent as an authorization plugin.
func (c *Client) SetGuard(ctx context.Context, req api.GuardRequest) (api.GuardStatus, error) {
	return call[api.GuardStatus](ctx, c, http.MethodPut, api.PathGuard, req)
}

// Check asks the node's agent whether one of its containers can be
// checkpointed now; it changes nothing.
func (c *Client) Check(ctx context.Context, req api.CheckRequest) (api.CheckResult, error) {
	return call[api.CheckResult](ctx, c, http.MethodPost, api.PathMigrateCheck, req)
}
