package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/daemonplugin/migrate"
	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
)

// serveMigrate runs a migration from this node and streams its progress,
// one JSON event a line; the last line has the result or the error. The
// events are kept (runs), for a CLI that follows the migration later.
func (a *Agent) serveMigrate(w http.ResponseWriter, r *http.Request) {
	var req api.MigrateRequest
	if err := decode(w, r, &req); err != nil {
		return
	}
	// Refused before the stream starts, so that the CLI sees its kind
	// (unavailable: wait for the new agent).
	if err := a.migrator.Accepting(); err != nil {
		reply(w, nil, err)
		return
	}
	send := streamEvents(w)
	x := a.runs.start(req.ID)
	emit := func(ev api.MigrateEvent) {
		a.runs.add(x, ev)
		// The caller may be gone; the migration goes on regardless.
		send(ev)
	}
	res, err := a.migrator.Migrate(r.Context(), req, emit)
	if err != nil {
		log.Printf("migration of %s to %s failed: %v", req.Container, req.To, err)
		emit(api.MigrateEvent{Phase: api.PhaseDone, Error: err.Error()})
		return
	}
	emit(api.MigrateEvent{Phase: api.PhaseDone, Result: res})
}

// serveFollow streams the events of a migration this node drives or drove,
// from the first, until its end.
func (a *Agent) serveFollow(w http.ResponseWriter, r *http.Request) {
	var req api.FollowRequest
	if err := decode(w, r, &req); err != nil {
		return
	}
	if req.ID == "" {
		reply(w, nil, workloads.Refuse(errdefs.ErrInvalidArgument, "follow: no migration id"))
		return
	}
	started := false
	send := func(ev api.MigrateEvent) {}
	err := a.runs.follow(req.ID, r.Context().Done(), func(ev api.MigrateEvent) {
		if !started {
			started, send = true, streamEvents(w)
		}
		send(ev)
	})
	if err != nil && !started {
		reply(w, nil, err)
	}
}

// streamEvents writes events as JSON lines, each flushed as it comes.
func streamEvents(w http.ResponseWriter) func(api.MigrateEvent) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	var mu sync.Mutex
	return func(ev api.MigrateEvent) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(ev)
		_ = rc.Flush()
	}
}

// receiveStall is how long a receive may wait for the next bytes: shorter
// than the source's own stall limit, so that by the time the source gives
// up and restores its copy, the destination has removed its twin.
const receiveStall = 10 * time.Second

// dumpWait is how long a receive waits for the stream's first byte once it
// asked for it: the source checkpoints its container meanwhile. A link cut
// during that wait is noticed sooner, by the connection's keep-alive
// (agentclient.KeepAlive), which ends the read.
const dumpWait = 5 * time.Minute

// servePrepare answers a source's prepare for an announced migration.
func (a *Agent) servePrepare(w http.ResponseWriter, r *http.Request) {
	var req api.PrepareRequest
	if err := decode(w, r, &req); err != nil {
		return
	}
	v, err := a.migrator.Prepare(r.Context(), peer(r.Context()).Name, r.Header.Get(api.HeaderMigration), req)
	reply(w, v, err)
}

// serveDecision takes the source's decision on a migration this node
// restored.
func (a *Agent) serveDecision(w http.ResponseWriter, r *http.Request) {
	var d api.Decision
	if err := decode(w, r, &d); err != nil {
		return
	}
	err := a.migrator.Decide(r.Context(), peer(r.Context()).Name, r.Header.Get(api.HeaderMigration), d)
	reply(w, struct{}{}, err)
}

// serveOutcome answers the other side of a migration.
func (a *Agent) serveOutcome(w http.ResponseWriter, r *http.Request) {
	var req api.OutcomeRequest
	if err := decode(w, r, &req); err != nil {
		return
	}
	v, err := a.migrator.Outcome(r.Context(), peer(r.Context()).Name, req.ID)
	reply(w, v, err)
}

// serveImageLoad takes the image of an announced migration.
func (a *Agent) serveImageLoad(w http.ResponseWriter, r *http.Request) {
	err := a.migrator.LoadImage(r.Context(), peer(r.Context()).Name, r.Header.Get(api.HeaderMigration), r.Body)
	reply(w, struct{}{}, err)
}

// serveReceive takes a container streamed by a source agent.
func (a *Agent) serveReceive(w http.ResponseWriter, r *http.Request) {
	h, err := streamHeader(r)
	if err == nil && h.ID != r.Header.Get(api.HeaderMigration) {
		err = workloads.Refuse(errdefs.ErrInvalidArgument, "bad %s header: migration %q in the header, %q on the request", api.HeaderReceive, h.ID, r.Header.Get(api.HeaderMigration))
	}
	if err != nil {
		reply(w, nil, err)
		return
	}
	serveStream(w, r, dumpWait, func(body io.Reader, trailer func() string) (any, error) {
		res, err := a.migrator.Receive(r.Context(), peer(r.Context()).Name, h, body, trailer)
		if err != nil {
			log.Printf("receiving %s from %s failed: %v", h.Name, h.From, err)
		}
		return res, err
	})
}

// streamHeader reads the header of a container's stream.
func streamHeader(r *http.Request) (api.ReceiveHeader, error) {
	var h api.ReceiveHeader
	raw, err := base64.StdEncoding.DecodeString(r.Header.Get(api.HeaderReceive))
	if err == nil {
		h, err = migrate.DecodeReceiveHeader(raw)
	}
	if err != nil {
		return h, workloads.Refuse(errdefs.ErrInvalidArgument, "bad %s header: %v", api.HeaderReceive, err)
	}
	return h, nil
}

// serveStream serves a container's stream to take, which reads its body
// and answers. A cut link stalls the body rather than ending it: the read
// gives up when no bytes come for receiveStall (first for firstWait).
func serveStream(w http.ResponseWriter, r *http.Request, firstWait time.Duration, take func(body io.Reader, trailer func() string) (any, error)) {
	rc := http.NewResponseController(w)
	begun := false
	body := readFunc(func(p []byte) (int, error) {
		wait := receiveStall
		if !begun {
			wait = firstWait
		}
		_ = rc.SetReadDeadline(time.Now().Add(wait))
		n, err := r.Body.Read(p)
		begun = begun || n > 0
		return n, err
	})
	// The answer may come while the source still sends (a receive that
	// fails half-way): the body stays readable after it.
	_ = rc.EnableFullDuplex()
	res, err := take(body, func() string { return r.Trailer.Get(api.TrailerCRC32C) })
	_ = rc.SetReadDeadline(time.Time{})
	reply(w, res, err)
	if err != nil {
		// Closing a connection with the source's bytes unread resets it,
		// and the reset can destroy the answer before the source reads
		// it: the source would learn only "connection reset", not why.
		// So the answer goes first, then what still comes is read away
		// for a moment, until the source, answered, stops sending.
		_ = rc.Flush()
		_ = rc.SetReadDeadline(time.Now().Add(answerDrain))
		_, _ = io.Copy(io.Discard, r.Body)
	}
}

// answerDrain is how long a failed receive reads away the rest of its
// stream after answering.
const answerDrain = 3 * time.Second

// leaveSwarm takes the engine out of the swarm. A busy engine can time out
// shutting its swarm node down half-way ("context deadline exceeded"), and
// then a second leave finishes the job: what counts is the state it ends in.
func (a *Agent) leaveSwarm(ctx context.Context) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if _, err = a.engine.SwarmLeave(ctx, client.SwarmLeaveOptions{Force: true}); err == nil {
			return nil
		}
		info, ierr := a.engine.Info(ctx, client.InfoOptions{})
		if ierr == nil && info.Info.Swarm.LocalNodeState == swarm.LocalNodeStateInactive {
			return nil
		}
		log.Printf("leaving the swarm (attempt %d): %v", attempt+1, err)
	}
	return err
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

// leave takes the node out of the fleet: its anchor goes, the engine leaves
// the swarm, and a moment after answering, the agent removes its own plugin.
func (a *Agent) leave(ctx context.Context, req api.LeaveRequest) (struct{}, error) {
	info, err := a.engine.Info(ctx, client.InfoOptions{})
	if err != nil {
		return struct{}{}, fmt.Errorf("engine: %w", err)
	}
	if info.Info.Swarm.ControlAvailable {
		// The manager holds the fleet's state: leaving would dissolve it.
		return struct{}{}, workloads.Refuse(errdefs.ErrPermissionDenied, "node %s is a swarm manager: it does not leave the fleet", a.cfg.Node)
	}
	list, err := a.engine.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", labels.Service)})
	if err != nil {
		return struct{}{}, err
	}
	if busy := a.migrator.Unfinished(); busy != "" && !req.Force {
		return struct{}{}, workloads.Refuse(errdefs.ErrConflict, "node %s has a migration to finish first: %s", a.cfg.Node, busy)
	}
	if len(list.Items) > 0 && !req.Force {
		return struct{}{}, workloads.Refuse(errdefs.ErrConflict, "node %s still has %d fleet containers", a.cfg.Node, len(list.Items))
	}
	// The guard off first: the plugin's removal below would leave the
	// engine consulting a plugin that is gone.
	if _, err := a.guard.Set(ctx, false); err != nil {
		return struct{}{}, fmt.Errorf("taking the guard off: %w", err)
	}
	if _, err := a.engine.ContainerRemove(ctx, workloads.AnchorName, client.ContainerRemoveOptions{Force: true}); err != nil && !errdefs.IsNotFound(err) {
		return struct{}{}, err
	}
	if err := a.leaveSwarm(ctx); err != nil {
		return struct{}{}, fmt.Errorf("leaving the swarm: %w", err)
	}
	if err := a.pool.Release(ctx); err != nil {
		log.Printf("shared pool: %v", err)
	}
	go func() {
		time.Sleep(time.Second)
		if _, err := a.engine.PluginRemove(context.Background(), labels.AgentPlugin, client.PluginRemoveOptions{Force: true}); err != nil {
			log.Printf("removing the agent plugin: %v", err)
		}
	}()
	return struct{}{}, nil
}

// drain makes way for an upgrade of this agent (api.PathDrain).
func (a *Agent) drain(ctx context.Context, req api.DrainRequest) (api.DrainResult, error) {
	d, wait := time.Duration(req.Seconds)*time.Second, time.Duration(req.Wait)*time.Second
	if req.Seconds < 0 || d > api.MaxDrain || req.Wait < 0 || wait > d {
		return api.DrainResult{}, workloads.Refuse(errdefs.ErrInvalidArgument,
			"drain: seconds must be 0 to %d and wait 0 to seconds (got %d and %d)", int(api.MaxDrain.Seconds()), req.Seconds, req.Wait)
	}
	busy := a.migrator.Drain(ctx, d, wait)
	switch {
	case d == 0:
		log.Printf("drain ended: taking work again")
	case busy == "":
		log.Printf("drained for an upgrade: no work in flight, none taken for %s", d)
	default:
		log.Printf("drained for an upgrade, but still in flight after %s: %s", wait, busy)
	}
	return api.DrainResult{Busy: busy}, nil
}
