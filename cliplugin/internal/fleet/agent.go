package fleet

import (
	"context"

	"github.com/docker-fleet/fleet/shared/agentclient"
	"github.com/docker-fleet/fleet/shared/api"
)

// Agent is a node's agent as the CLI calls it through an inventory
// (NodeState.Agent): *agentclient.Client over mutual TLS, or a fake in
// tests (fleettest). Its refusals carry containerd/errdefs kinds
// (errdefs.IsConflict, IsNotFound, …), whatever the transport.
//
// What only a real client has stays off it: its connections (IdleCloser)
// and the calls init and enrollment make on a client of their own
// (Fleet.Agent, agentclient.New).
type Agent interface {
	// The node.
	Info(ctx context.Context) (api.Info, error)
	Metrics(ctx context.Context) (api.Metrics, error)
	Ledger(ctx context.Context) (api.Ledger, error)
	Drain(ctx context.Context, req api.DrainRequest) (api.DrainResult, error)
	Leave(ctx context.Context, req api.LeaveRequest) error

	// Its fleet containers.
	Create(ctx context.Context, req api.CreateRequest) (api.FleetContainer, error)
	Remove(ctx context.Context, name string) error
	Retire(ctx context.Context, name string) error
	Promote(ctx context.Context, name string, req api.PromoteRequest) (api.FleetContainer, error)
	Resize(ctx context.Context, name string, req api.ResizeRequest) (api.FleetContainer, error)
	Detail(ctx context.Context, name string) (api.ContainerDetail, error)

	// Migrations, this node the source (Migrate, Check, Follow) or the
	// destination (Expect).
	Expect(ctx context.Context, e api.Expectation) error
	Migrate(ctx context.Context, req api.MigrateRequest, onEvent func(api.MigrateEvent)) (*api.MigrateResult, error)
	Follow(ctx context.Context, id string, onEvent func(api.MigrateEvent)) (*api.MigrateResult, error)
	Check(ctx context.Context, req api.CheckRequest) (api.CheckResult, error)

	// Images, sent node to node.
	Images(ctx context.Context, req api.ImagesRequest) (api.ImagesResponse, error)
	ExpectImage(ctx context.Context, t api.ImageTransfer) error
	SendImage(ctx context.Context, t api.ImageTransfer) error

	// Logs, live and kept.
	Logs(ctx context.Context, name string, q api.LogsQuery) (*agentclient.LogStream, error)
	DropLogs(ctx context.Context, name string) error
}

// IdleCloser is an agent that holds connections: a caller that keeps an
// inventory for long (logs -f) closes them, for through the relay each is
// an exec. A fake holds none and need not have it.
type IdleCloser interface {
	CloseIdleConnections()
}

var (
	_ Agent      = (*agentclient.Client)(nil)
	_ IdleCloser = (*agentclient.Client)(nil)
)
