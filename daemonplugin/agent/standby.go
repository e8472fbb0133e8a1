package agent

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
)

// serveStandbyReceive takes one checkpoint of a container this node is
// the standby of.
func (a *Agent) serveStandbyReceive(w http.ResponseWriter, r *http.Request) {
	h, err := streamHeader(r)
	if err != nil {
		reply(w, nil, err)
		return
	}
	from := peer(r.Context()).Name
	serveStream(w, r, receiveStall, func(body io.Reader, trailer func() string) (any, error) {
		err := a.migrator.StandbyReceive(r.Context(), from, h, body, trailer)
		if err != nil {
			log.Printf("standby: a checkpoint of %s from %s failed: %v", h.Name, from, err)
		}
		return struct{}{}, err
	})
}

// rejoin has this node's engine join the swarm again, once the leader
// removed it while it was taken for dead and has fenced it. An engine that
// is an active member already stays as it is.
func (a *Agent) rejoin(ctx context.Context, req api.RejoinRequest) (api.RejoinResult, error) {
	if req.JoinToken == "" || len(req.RemoteAddrs) == 0 {
		return api.RejoinResult{}, workloads.Refuse(errdefs.ErrInvalidArgument, "rejoin: a join token and the managers' addresses are needed")
	}
	info, err := a.engine.Info(ctx, client.InfoOptions{})
	if err != nil {
		return api.RejoinResult{}, fmt.Errorf("engine: %w", err)
	}
	sw := info.Info.Swarm
	if sw.LocalNodeState == swarm.LocalNodeStateActive && sw.NodeID != req.Removed {
		return api.RejoinResult{NodeID: sw.NodeID}, nil // joined again already
	}
	// Removed from the swarm, the engine still holds its old membership
	// (refused by the managers, though an engine that was cut off rather
	// than stopped still calls it active): it leaves it first.
	if sw.LocalNodeState != swarm.LocalNodeStateInactive {
		a.leftMu.Lock()
		a.leftManagers, a.leftAt = managerAddrs(sw.RemoteManagers), time.Now()
		a.leftMu.Unlock()
		if err := a.leaveSwarm(ctx); err != nil {
			return api.RejoinResult{}, fmt.Errorf("leaving the old membership: %w", err)
		}
	}
	join := client.SwarmJoinOptions{ListenAddr: "0.0.0.0:2377", AdvertiseAddr: req.AdvertiseAddr, RemoteAddrs: req.RemoteAddrs, JoinToken: req.JoinToken}
	if _, err := a.engine.SwarmJoin(ctx, join); err != nil {
		return api.RejoinResult{}, fmt.Errorf("joining the swarm at %v: %w", req.RemoteAddrs, err)
	}
	info, err = a.engine.Info(ctx, client.InfoOptions{})
	if err != nil {
		return api.RejoinResult{}, fmt.Errorf("engine: %w", err)
	}
	log.Printf("joined the swarm again as %s, after the leader took this node for dead and removed it", info.Info.Swarm.NodeID)
	return api.RejoinResult{NodeID: info.Info.Swarm.NodeID}, nil
}
