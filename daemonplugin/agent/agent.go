package agent

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/go-plugins-helpers/authorization"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/daemonplugin/criucheck"
	"github.com/docker-fleet/fleet/daemonplugin/guard"
	"github.com/docker-fleet/fleet/daemonplugin/hostexec"
	"github.com/docker-fleet/fleet/daemonplugin/images"
	"github.com/docker-fleet/fleet/daemonplugin/journal"
	"github.com/docker-fleet/fleet/daemonplugin/keyring"
	"github.com/docker-fleet/fleet/daemonplugin/leader"
	"github.com/docker-fleet/fleet/daemonplugin/logstore"
	"github.com/docker-fleet/fleet/daemonplugin/metrics"
	"github.com/docker-fleet/fleet/daemonplugin/migrate"
	"github.com/docker-fleet/fleet/daemonplugin/pool"
	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/version"
)

// criuTTL bounds how long a CRIU check is reused: installing or upgrading
// CRIU on the host shows up without restarting the agent.
const criuTTL = time.Minute

// poolInterval is how often the shared pool is checked without an engine
// event: events move it at once, this catches one missed.
const poolInterval = 30 * time.Second

// Agent serves one node.
type Agent struct {
	cfg       Config
	engine    client.APIClient
	keys      *keyring.Keyring // nil until init gives the fleet CA
	sampler   *metrics.Sampler
	workloads *workloads.Manager
	migrator  *migrate.Migrator
	images    *images.Store
	logs      *logstore.Store
	pool      *pool.Pool
	cpu       *metrics.ContainerCPU
	guard     *guard.Guard
	rules     *guard.Rules
	runs      runs
	// managers are the swarm's managers' addresses, whose agents'
	// certificates count as pki.RoleManager (nil: none).
	managers func(context.Context) ([]netip.Addr, error)

	// leftManagers are the managers the engine knew when rejoin left its
	// old membership, at leftAt (swarmManagers).
	leftMu       sync.Mutex
	leftManagers []netip.Addr
	leftAt       time.Time

	pluginID     atomic.Value
	pluginIDOnce sync.Once

	criuMu      sync.Mutex
	criu        api.CRIUInfo
	criuVersion int
	criuAt      time.Time
	// criuChecking: a check of a stale CRIU runs in the background.
	criuChecking bool

	facts factsCache
}

// New connects the agent to its engine and loads the node's identity.
func New(cfg Config) (*Agent, error) {
	// The agent's own engine calls carry a token its guard lets through.
	token := rand.Text()
	engine, err := client.New(client.WithHost(cfg.EngineHost), client.WithHTTPHeaders(map[string]string{guard.HeaderAgent: token}))
	if err != nil {
		return nil, fmt.Errorf("engine client: %w", err)
	}
	var keys *keyring.Keyring
	if len(cfg.CA) > 0 {
		if keys, err = keyring.Open(cfg.StateDir, cfg.Node, cfg.CA, cfg.EnrollToken); err != nil {
			return nil, err
		}
	}
	jr, err := journal.Open(cfg.JournalDir)
	if err != nil {
		return nil, err
	}
	cores := func() (cpuset.Set, error) { return metrics.Cores(cfg.Proc) }
	shared := &pool.Pool{Engine: engine, Cores: cores, File: cfg.PoolFile}
	cpu := &metrics.ContainerCPU{Proc: cfg.Proc, Cgroup: hostexec.HostRoot + "/sys/fs/cgroup", Pids: func() map[string]int {
		pids := map[string]int{}
		for _, c := range shared.Snapshot() {
			if c.Fleet && c.Pid > 0 {
				pids[c.ID] = c.Pid
			}
		}
		return pids
	}}
	wl := &workloads.Manager{Node: cfg.Node, Engine: engine, Cores: cores, FilesDir: cfg.FilesDir, Wanted: shared.Wanted, CPU: cpu.Cores}
	a := &Agent{
		cfg:       cfg,
		engine:    engine,
		keys:      keys,
		sampler:   metrics.NewSampler(cfg.Proc, time.Second),
		workloads: wl,
		pool:      shared,
		cpu:       cpu,
		migrator:  &migrate.Migrator{Node: cfg.Node, Engine: engine, Workloads: wl, Creds: keys, HostRoot: hostexec.HostRoot, Journal: jr},
	}
	a.managers = a.swarmManagers
	a.guard = &guard.Guard{Engine: engine, Proc: cfg.Proc, HostRoot: hostexec.HostRoot, StateDir: cfg.GuardDir, Self: labels.AgentPlugin}
	a.rules = &guard.Rules{Token: token, Self: labels.AgentPlugin, SelfID: a.selfID, Containers: shared.Snapshot,
		Busy: a.migrator.Migrating, SelfDisabling: a.guard.SelfDisabling, SelfDisableFailed: a.guard.SelfDisableFailed}
	a.guard.Seen = a.rules.Seen
	a.logs = &logstore.Store{Dir: cfg.LogsDir, Node: cfg.Node}
	a.migrator.Logs = a.logs
	a.images = &images.Store{Node: cfg.Node, Engine: engine, MaxImage: migrate.MaxTransfer,
		Push: func(ctx context.Context, node, addr, id string, body io.Reader) error {
			peer, err := a.migrator.Peer(node, addr)
			if err != nil {
				return err
			}
			return peer.PushImage(ctx, id, body)
		}}
	a.migrator.Standby.Dir = cfg.StandbyDir
	wl.Migrating = a.migrator.Migrating
	wl.Checkpoint = a.migrator.CheckpointStatus
	wl.Standbys = a.migrator.Standbys
	a.migrator.ForeignLimits = func() bool {
		criu, _ := a.criuInfo()
		return readsForeignLimits(readCapabilities(cfg.Proc), criu)
	}
	return a, nil
}

// Run serves the engine hooks on the plugin socket and, once init has given
// the agent the fleet CA, the fleet API on the TCP port. It returns when
// ctx ends or a listener fails.
func (a *Agent) Run(ctx context.Context) error {
	go a.sampler.Run(ctx.Done())
	go a.workloads.CleanupIncoming(ctx)
	if a.keys != nil {
		// Migrations this agent left unfinished, if it died in one.
		go a.migrator.Start(ctx)
		// Background checkpoints of containers that have them.
		go a.migrator.RunCheckpoints(ctx)
		// On the swarm's leader: watch the nodes, relocate the dead's.
		go (&leader.Leader{Engine: a.engine, Creds: a.keys}).Run(ctx)
		// The shared pool: what holds no exclusive cores runs on the rest.
		go a.pool.Run(ctx, poolInterval)
		// What each fleet container uses, for rebalance.
		go a.cpu.Run(ctx.Done(), time.Second)
	}
	go a.criuInfo() // warm the cache; CRIU takes a moment to start
	a.selfID()      // the guard knows its plugin by ID too
	servePprof(a.cfg.Pprof)

	// errc has the TCP port's end, sockc the plugin socket's.
	errc, sockc := make(chan error, 1), make(chan error, 1)
	serveAuthz := func() {
		authz := authorization.NewHandler(a.rules)
		go func() { sockc <- fmt.Errorf("plugin socket: %w", authz.ServeUnix(a.cfg.AuthzSocket, 0)) }()
	}
	if a.guard.Wanted() {
		// The engine consults the agent: its socket first, whatever else
		// fails, or the engine could not start or answer.
		serveAuthz()
		go a.guard.Resume(ctx)
	}
	// Else the TCP port first: if it cannot be had, the agent exits before
	// its plugin socket exists, and the engine's enable fails instead of
	// reporting an agent that cannot be reached.
	if a.keys == nil {
		log.Printf("no fleet CA set (%s): not listening on TCP", api.EnvTLSCA)
	} else {
		tlsCfg, err := a.keys.ServerConfig()
		if err != nil {
			return err
		}
		ln, err := listen(ctx, a.cfg.Port)
		if err != nil && a.guard.Wanted() {
			// Exiting would leave the engine naming a plugin that is gone.
			log.Printf("agent port: %v; serving the engine's guard alone", err)
			<-ctx.Done()
			return nil
		}
		if err != nil {
			return fmt.Errorf("agent port: %w", err)
		}
		srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: maxHeader}
		go func() { errc <- srv.Serve(tls.NewListener(ln, tlsCfg)) }()
		go func() { <-ctx.Done(); _ = srv.Close() }()
		log.Printf("fleet agent %s for node %q listening on :%d (mutual TLS)", version.Version, a.cfg.Node, a.cfg.Port)
	}
	if !a.guard.Wanted() {
		serveAuthz()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-sockc:
			return err
		case err := <-errc:
			if !a.guard.Wanted() {
				return err
			}
			// The engine consults the agent: it stays, its socket served.
			log.Printf("%v; the guard is on: the agent stays to answer its engine", err)
		}
	}
}

// GuardWanted says whether the engine is to consult the agent (its guard
// is on), from the agent's state alone: main asks it when the agent cannot
// start.
func GuardWanted(cfg Config) bool {
	_, err := os.Stat(filepath.Join(cmp.Or(cfg.GuardDir, defaultGuardDir), "wanted"))
	return err == nil
}

// ServeAllowAll answers the engine's authorization requests, allowing
// every one, until ctx ends: an agent that cannot start must not take its
// engine down with it.
func ServeAllowAll(ctx context.Context, cfg Config) error {
	h := authorization.NewHandler(&guard.Rules{AllowAll: true})
	errc := make(chan error, 1)
	go func() { errc <- h.ServeUnix(cmp.Or(cfg.AuthzSocket, defaultAuthzSocket), 0) }()
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}

// Handler is the fleet API: every route checks the caller's role (api.Access)
// and that its certificate is not revoked.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	wl := a.workloads
	routes := map[string]http.HandlerFunc{
		"GET " + api.PathInfo:        withMaxAge(getJSON(a.Info)),
		"GET " + api.PathMetrics:     getJSON(a.Metrics),
		"GET " + api.PathLedger:      getJSON(wl.Ledger),
		"POST " + api.PathContainers: postJSONUpTo(maxCreateBody, wl.Create),
		"POST " + api.PathFence:      postJSON(wl.Fence),
		"GET " + api.PathContainer + "{name}": func(w http.ResponseWriter, r *http.Request) {
			v, err := wl.Detail(r.Context(), r.PathValue("name"))
			reply(w, v, err)
		},
		"DELETE " + api.PathContainer + "{name}": func(w http.ResponseWriter, r *http.Request) {
			// ?retire=1: a rolling update's; older agents ignore it and remove.
			if r.URL.Query().Get(api.QueryRetire) == "1" {
				reply(w, struct{}{}, wl.Retire(r.Context(), r.PathValue("name")))
				return
			}
			reply(w, struct{}{}, a.remove(r.Context(), r.PathValue("name")))
		},
		"POST " + api.PathContainer + "{name}" + api.ResizeSuffix:  postNamedJSON(wl.Resize),
		"POST " + api.PathContainer + "{name}" + api.PromoteSuffix: postNamedJSON(wl.Promote),
		"POST " + api.PathMigrate:                                  a.serveMigrate,
		"POST " + api.PathFollow:                                   a.serveFollow,
		"POST " + api.PathExpect:                                   postJSON(a.migrator.Expect),
		"POST " + api.PathLeave:                                    postJSON(a.leave),
		"PUT " + api.PathGuard:                                     postJSON(a.setGuard),
		"POST " + api.PathDrain:                                    postJSON(a.drain),
		"POST " + api.PathNodeCSR:                                  postJSON(a.nodeCSR),
		"PUT " + api.PathNodeCert:                                  postJSON(a.installCert),
		"PUT " + api.PathRevocations:                               postJSON(a.setRevocations),
		"POST " + api.PathPrepare:                                  a.servePrepare,
		"POST " + api.PathImageLoad:                                a.serveImageLoad,
		"POST " + api.PathReceive:                                  a.serveReceive,
		"POST " + api.PathDecision:                                 a.serveDecision,
		"POST " + api.PathOutcome:                                  a.serveOutcome,

		// Warm relocation (the leader's calls, and checkpoints between
		// nodes).
		"POST " + api.PathRejoin:         postJSON(a.rejoin),
		"POST " + api.PathStandbyAssign:  postJSON(a.migrator.StandbyAssign),
		"POST " + api.PathStandbyExpect:  postJSON(a.migrator.StandbyExpect),
		"POST " + api.PathStandbyDrop:    postJSON(a.migrator.StandbyDrop),
		"POST " + api.PathStandbyRestore: postJSON(a.migrator.StandbyRestore),
		"POST " + api.PathStandbyReceive: a.serveStandbyReceive,

		// Images without a registry (create, before anything is made).
		"POST " + api.PathImages:      postJSON(a.images.Have),
		"POST " + api.PathImageExpect: postJSON(a.images.Expect),
		"POST " + api.PathImageSend:   postJSON(a.images.Send),
		"POST " + api.PathImagePush: func(w http.ResponseWriter, r *http.Request) {
			reply(w, struct{}{}, a.images.Load(r.Context(), peer(r.Context()).Name, r.Header.Get(api.HeaderImageID), r.Body))
		},

		// A container's logs, kept across its migrations (logs.go).
		"GET " + api.PathContainer + "{name}" + api.LogsSuffix: a.serveLogs,
		"DELETE " + api.PathContainer + "{name}" + api.LogsSuffix: func(w http.ResponseWriter, r *http.Request) {
			reply(w, struct{}{}, a.logs.Drop(r.PathValue("name")))
		},

		// migrate --check: looks at a container, changes nothing.
		"POST " + api.PathMigrateCheck: postJSON(a.migrator.Check),
	}
	for pattern, h := range routes {
		roles, ok := api.Access[pattern]
		if !ok {
			panic("agent route " + pattern + " has no entry in api.Access")
		}
		mux.Handle(pattern, a.authorize(roles, h))
	}
	return mux
}

// maxBody bounds a JSON request body, maxCreateBody a create's (which
// carries the contents of the replica's secrets and configs, and of the
// files beside its Compose file), and
// maxHeader the request headers (the receive header carries a container's
// configuration, and its secrets and configs). Those contents, of
// spec.MaxFilesBytes at most, take less than twice that as base64 in
// JSON, even base64'd again in a header.
const (
	maxBody       = 64 << 10
	maxCreateBody = maxBody + 2*(spec.MaxFilesBytes+spec.MaxCopyBytes)
	maxHeader     = 256<<10 + 2*spec.MaxFilesBytes
)

// getJSON serves what fn returns as JSON, or its error as an api.Error.
func getJSON[T any](fn func(context.Context) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := fn(r.Context())
		reply(w, v, err)
	}
}

// postJSON decodes the request body for fn and serves its answer.
func postJSON[Req, Resp any](fn func(context.Context, Req) (Resp, error)) http.HandlerFunc {
	return postJSONUpTo(maxBody, fn)
}

// postJSONUpTo is postJSON for a body of up to limit bytes.
func postJSONUpTo[Req, Resp any](limit int64, fn func(context.Context, Req) (Resp, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if err := decodeUpTo(w, r, &req, limit); err != nil {
			return
		}
		v, err := fn(r.Context(), req)
		reply(w, v, err)
	}
}

// postNamedJSON is postJSON for a route on one container ({name}).
func postNamedJSON[Req, Resp any](fn func(context.Context, string, Req) (Resp, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if err := decode(w, r, &req); err != nil {
			return
		}
		v, err := fn(r.Context(), r.PathValue("name"), req)
		reply(w, v, err)
	}
}

func decode(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeUpTo(w, r, v, maxBody)
}

func decodeUpTo(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err != nil {
		reply(w, nil, workloads.Refuse(errdefs.ErrInvalidArgument, "bad request: %v", err))
	}
	return err
}

// reply writes v, or err with the HTTP status of its kind (status). Every
// route answers through it; a stream's first line commits a 200.
func reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(status(err))
		_ = json.NewEncoder(w).Encode(api.Error{Message: err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}

// Info reports the node's engine, CRIU and migration readiness.
func (a *Agent) Info(ctx context.Context) (api.Info, error) {
	facts, err := a.engineFacts(ctx)
	if err != nil {
		return api.Info{}, err
	}
	in, ver := facts.info, facts.version
	engine := api.EngineInfo{
		Version:       in.ServerVersion,
		APIVersion:    ver.APIVersion,
		CgroupVersion: in.CgroupVersion,
		Experimental:  in.ExperimentalBuild,
		DataRoot:      in.DockerRootDir,
		SwarmNodeID:   in.Swarm.NodeID,
	}
	for _, c := range ver.Components {
		switch strings.ToLower(c.Name) {
		case "containerd":
			engine.Containerd = c.Version
		case "runc":
			engine.Runc = c.Version
		}
	}
	criu, criuVersion := a.criuInfo()
	node := a.cfg.Node
	if node == "" {
		node = in.Name
	}
	guardStatus, err := a.guard.Status(ctx)
	if err != nil {
		return api.Info{}, err
	}
	caps := readCapabilities(a.cfg.Proc)
	ready := Readiness(engine, criu, criuVersion)
	ready.Limits = CapabilityLimits(caps, criu)
	return api.Info{
		Node:         node,
		AgentVersion: version.Version,
		APIVersion:   api.APIVersion,
		Kernel:       in.KernelVersion,
		NCPU:         in.NCPU,
		MemTotal:     in.MemTotal,
		Engine:       engine,
		CRIU:         criu,
		Migration:    ready,
		Capabilities: caps,
		CertNotAfter: a.certNotAfter(),
		Guard:        &guardStatus,
	}, nil
}

// Metrics reports the node's current figures and containers.
func (a *Agent) Metrics(ctx context.Context) (api.Metrics, error) {
	mem, ifaces, uptime, err := metrics.Host(a.cfg.Proc)
	if err != nil {
		return api.Metrics{}, err
	}
	list, err := a.engine.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return api.Metrics{}, fmt.Errorf("engine: %w", err)
	}
	m := api.Metrics{
		Time:    time.Now(),
		Uptime:  uptime,
		CPU:     a.sampler.CPU(2 * time.Second),
		Memory:  mem,
		Network: ifaces,
	}
	for _, c := range list.Items {
		name := c.ID[:12]
		if len(c.Names) > 0 {
			name = c.Names[0][1:]
		}
		m.Containers = append(m.Containers, api.Container{
			ID: c.ID, Name: name, Image: c.Image, State: string(c.State),
			Service: c.Labels[labels.Service],
		})
	}
	return m, nil
}

func (a *Agent) criuInfo() (api.CRIUInfo, int) {
	a.criuMu.Lock()
	defer a.criuMu.Unlock()
	switch {
	case a.criuAt.IsZero():
		a.checkCRIULocked()
	case time.Since(a.criuAt) > criuTTL && !a.criuChecking:
		// Stale: answer with it, and check again meanwhile (a check runs
		// criu, which takes a while on a busy host: Info must not wait).
		a.criuChecking = true
		go func() {
			criu, version := criucheck.Check(a.cfg.CRIUPath)
			criu.Patches = criuPatches()
			a.criuMu.Lock()
			defer a.criuMu.Unlock()
			a.criu, a.criuVersion, a.criuAt, a.criuChecking = criu, version, time.Now(), false
		}()
	}
	return a.criu, a.criuVersion
}

func (a *Agent) checkCRIULocked() {
	a.criu, a.criuVersion = criucheck.Check(a.cfg.CRIUPath)
	a.criu.Patches = criuPatches()
	a.criuAt = time.Now()
}

// selfID is the agent's plugin ID, asked of the engine once (the guard
// recognises its plugin by ID too).
func (a *Agent) selfID() string {
	if v, ok := a.pluginID.Load().(string); ok {
		return v
	}
	a.pluginIDOnce.Do(func() {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if p, err := a.engine.PluginInspect(ctx, labels.AgentPlugin, client.PluginInspectOptions{}); err == nil {
				a.pluginID.Store(p.Plugin.ID)
			}
		}()
	})
	return ""
}

// setGuard turns the node's guard on or off (api.PathGuard).
func (a *Agent) setGuard(ctx context.Context, req api.GuardRequest) (api.GuardStatus, error) {
	return a.guard.Set(ctx, req.On)
}
