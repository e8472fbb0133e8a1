// Package guard is the agent as the engine's authorization plugin
// (docker.authz/1.0): with `docker fleet init --guard`, the node's engine
// asks it about every request, and it refuses the few that would break what
// the fleet promises (another container on a fleet container's exclusive
// cores; a fleet container's cores or memory changed behind the ledger; a
// fleet container stopped or removed while a migration holds it). Every
// other request passes untouched.
//
// The guard must never lock a user out of their engine: it decides from
// memory, never calls the engine while deciding, lets a request through
// when it cannot decide in time, and takes itself out of the engine's
// configuration before anything could leave the engine listing a plugin
// that is gone (daemon.go, guard.go).
package guard

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/docker/go-plugins-helpers/authorization"

	"github.com/docker-fleet/fleet/daemonplugin/pool"
	"github.com/docker-fleet/fleet/shared/cpuset"
)

// HeaderAgent carries the agent's own token on its engine calls: the guard
// lets its own agent through (a migration stops, removes and pins fleet
// containers).
const HeaderAgent = "X-Fleet-Agent"

// probePrefix starts the name of the container a probe asks the engine
// about (Guard.Consulted): the guard notes it, whoever asks.
const probePrefix = "fleet-guard-probe-"

// decideWithin bounds the one decision that takes a lock held elsewhere
// (whether a migration holds a container): undecided, the request passes
// rather than waits. Every other decision is from memory.
const decideWithin = 100 * time.Millisecond

// Rules decides the engine's requests.
type Rules struct {
	// AllowAll lets every request through: an agent that could not start
	// answers its engine so (main's fatal).
	AllowAll bool
	// Token is what the agent's own requests carry in HeaderAgent.
	Token string
	// Self names the agent's plugin as the engine knows it (name:tag), and
	// SelfID its ID ("" until known).
	Self   string
	SelfID func() string
	// Containers are the node's containers (pool.Pool.Snapshot): the
	// guard never asks the engine while it decides.
	Containers func() []pool.Container
	// Busy says why a fleet container must not be stopped or removed now
	// ("": it may).
	Busy func(name string) string
	// SelfDisabling is called when the engine is asked to disable the
	// agent's plugin, before it does, and SelfDisableFailed when it did
	// not: a disabled plugin the engine's configuration still names would
	// keep the engine from starting or reloading.
	SelfDisabling, SelfDisableFailed func()

	probes sync.Map // probe nonce → seen
}

// Seen says whether the engine asked about probe nonce (and forgets it).
func (r *Rules) Seen(nonce string) bool {
	_, ok := r.probes.LoadAndDelete(nonce)
	return ok
}

// AuthZReq decides a request before the engine acts on it.
func (r *Rules) AuthZReq(req authorization.Request) authorization.Response {
	if r.AllowAll {
		return allow
	}
	if _, rest, ok := strings.Cut(req.RequestURI, probePrefix); ok {
		// The nonce is rand.Text's: letters and digits, then the URI goes on.
		end := strings.IndexFunc(rest, func(c rune) bool { return (c < 'A' || c > 'Z') && (c < '2' || c > '7') })
		if end < 0 {
			end = len(rest)
		}
		r.probes.Store(rest[:end], true)
	}
	if r.Token != "" && req.RequestHeaders[HeaderAgent] == r.Token {
		return allow
	}
	return r.decide(req)
}

// AuthZRes lets every answer through; it notices a failed disable of the
// agent's own plugin.
func (r *Rules) AuthZRes(req authorization.Request) authorization.Response {
	if req.ResponseStatusCode >= 300 && req.RequestMethod == "POST" && r.SelfDisableFailed != nil {
		if path, _ := route(req.RequestURI); r.isSelfPath(path, "/disable") {
			r.SelfDisableFailed()
		}
	}
	return allow
}

var allow = authorization.Response{Allow: true}

func deny(format string, args ...any) authorization.Response {
	return authorization.Response{Msg: fmt.Sprintf(format, args...)}
}

// version is the API version prefix of a request's path.
var version = regexp.MustCompile(`^/v[0-9]+(\.[0-9]+)?/`)

// route is a request's path without its API version, and its query.
func route(uri string) (string, url.Values) {
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return "", nil
	}
	p := version.ReplaceAllString(u.Path, "/")
	return p, u.Query()
}

func (r *Rules) decide(req authorization.Request) authorization.Response {
	path, q := route(req.RequestURI)
	if rest, ok := strings.CutPrefix(path, "/containers/"); ok {
		return r.decideContainer(req, strings.Split(rest, "/"))
	}
	if strings.HasPrefix(path, "/plugins/") {
		return r.decidePlugin(req, path, q)
	}
	return allow
}

// decideContainer decides /containers/{parts...}.
func (r *Rules) decideContainer(req authorization.Request, parts []string) authorization.Response {
	switch {
	case req.RequestMethod == "POST" && len(parts) == 1 && parts[0] == "create":
		var body struct {
			HostConfig *struct{ CpusetCpus string }
		}
		if !r.decodeBody(req, &body) {
			return r.unreadable("create")
		}
		if body.HostConfig != nil {
			return r.cpusetFree(body.HostConfig.CpusetCpus, "")
		}
	case req.RequestMethod == "POST" && len(parts) == 2 && parts[1] == "update":
		return r.decideUpdate(req, parts[0])
	case req.RequestMethod == "POST" && len(parts) == 2 && slices.Contains(holdsOff, parts[1]):
		return r.notBusy(parts[0], parts[1])
	case req.RequestMethod == "DELETE" && len(parts) == 1:
		return r.notBusy(parts[0], "rm")
	}
	return allow
}

// holdsOff are what may not be done to a container a migration holds
// (besides removing it).
var holdsOff = []string{"stop", "kill", "pause", "restart", "checkpoints"}

// decideUpdate decides an update of container ref: never a fleet
// container's cores or memory, never another onto exclusive cores.
func (r *Rules) decideUpdate(req authorization.Request, ref string) authorization.Response {
	c, fleet := r.find(ref)
	var body struct {
		CpusetCpus         string
		Memory, MemorySwap int64
	}
	readable := r.decodeBody(req, &body)
	if fleet && (!readable || body.CpusetCpus != "" || body.Memory != 0 || body.MemorySwap != 0) {
		return deny("%s is a fleet container: change its cores or memory with `docker fleet resize %s`", c.Name, c.Name)
	}
	if !readable {
		return r.unreadable("update")
	}
	return r.cpusetFree(body.CpusetCpus, c.ID)
}

// decidePlugin decides /plugins/...: the agent's own plugin is not removed
// by force while the engine consults it, and leaves the engine's file
// before it is disabled.
func (r *Rules) decidePlugin(req authorization.Request, path string, q url.Values) authorization.Response {
	switch {
	case req.RequestMethod == "DELETE" && r.isSelfPath(path, "") && (q.Get("force") == "1" || q.Get("force") == "true"):
		// rm -f disables the plugin without taking it off the engine's
		// list: every request would then fail.
		return deny("the fleet guard is on: take it off first (`docker fleet init --guard=false`), or disable the plugin before removing it")
	case req.RequestMethod == "POST" && r.isSelfPath(path, "/disable") && r.SelfDisabling != nil:
		r.SelfDisabling()
	}
	return allow
}

// decodeBody reads a request's JSON body; false when there is none to read
// (the engine sends none over 1 MiB or without a length).
func (r *Rules) decodeBody(req authorization.Request, v any) bool {
	if len(req.RequestBody) == 0 {
		return false
	}
	return json.Unmarshal(req.RequestBody, v) == nil
}

// unreadable refuses a create or update whose cpuset the guard cannot read,
// but only on a node where there is something to protect.
func (r *Rules) unreadable(what string) authorization.Response {
	for _, c := range r.Containers() {
		if len(c.Exclusive) > 0 {
			return deny("the fleet guard cannot read this %s's body to check its cpuset: send it with a Content-Length, under 1 MiB", what)
		}
	}
	return allow
}

// cpusetFree refuses a cpuset with a core a fleet container (not self)
// holds exclusively, naming it.
func (r *Rules) cpusetFree(s, self string) authorization.Response {
	if s == "" {
		return allow
	}
	want, err := cpuset.Parse(s)
	if err != nil {
		return allow // the engine says what is wrong with it
	}
	for _, c := range r.Containers() {
		if c.ID == self {
			continue
		}
		if clash := want.Intersect(c.Exclusive); len(clash) > 0 {
			return deny("core %s of this node is held exclusively by fleet container %s: choose cores outside the fleet's (`docker fleet describe NODE` shows the shared pool), or leave --cpuset-cpus out", clash, c.Name)
		}
	}
	return allow
}

// notBusy refuses to stop or remove a fleet container a fleet operation
// holds.
func (r *Rules) notBusy(ref, what string) authorization.Response {
	c, fleet := r.find(ref)
	if !fleet || r.Busy == nil {
		return allow
	}
	if why := r.busyWithin(c.Name); why != "" {
		return deny("%s is held by docker fleet (%s): %s it when that ends", c.Name, why, strings.TrimSuffix(what, "s"))
	}
	return allow
}

// busyWithin is Busy, or "" when it cannot say in decideWithin (it takes
// the migrator's lock): the engine waits on this answer.
func (r *Rules) busyWithin(name string) string {
	done := make(chan string, 1)
	go func() { done <- r.Busy(name) }()
	t := time.NewTimer(decideWithin)
	defer t.Stop()
	select {
	case why := <-done:
		return why
	case <-t.C:
		return ""
	}
}

// find resolves a container reference as the engine does: a full ID, a
// name, then a unique ID prefix. fleet: it is a fleet container.
func (r *Rules) find(ref string) (pool.Container, bool) {
	ref = strings.TrimPrefix(ref, "/")
	all := r.Containers()
	for _, c := range all {
		if c.ID == ref || c.Name == ref {
			return c, c.Fleet
		}
	}
	var found []pool.Container
	for _, c := range all {
		if strings.HasPrefix(c.ID, ref) {
			found = append(found, c)
		}
	}
	if len(found) == 1 {
		return found[0], found[0].Fleet
	}
	return pool.Container{}, false
}

// isSelfPath says whether path is /plugins/{the agent's plugin}{suffix}.
func (r *Rules) isSelfPath(path, suffix string) bool {
	rest, ok := strings.CutPrefix(path, "/plugins/")
	if !ok {
		return false
	}
	name, ok := strings.CutSuffix(rest, suffix)
	if !ok || name == "" {
		return false
	}
	if ref, err := reference.ParseNormalizedNamed(name); err == nil {
		if self, err := reference.ParseNormalizedNamed(r.Self); err == nil &&
			reference.TagNameOnly(ref).String() == reference.TagNameOnly(self).String() {
			return true
		}
	}
	// Or its ID, or a prefix of it, as the engine takes them.
	id := ""
	if r.SelfID != nil {
		id = r.SelfID()
	}
	return id != "" && strings.HasPrefix(id, name)
}
