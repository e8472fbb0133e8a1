package guard

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
)

// Engine is what the guard asks of the node's engine (never while deciding
// a request: only to turn itself on or off).
type Engine interface {
	Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error)
	PluginInspect(context.Context, string, client.PluginInspectOptions) (client.PluginInspectResult, error)
	ContainerList(context.Context, client.ContainerListOptions) (client.ContainerListResult, error)
}

// settle is how long the guard waits for the engine to show a reload.
const settle = 10 * time.Second

// Guard turns the engine's consulting of the agent on and off, and keeps
// the wish across the agent's restarts (an upgrade disables and enables it).
type Guard struct {
	Engine Engine
	// Proc is the host's procfs, HostRoot the host's root filesystem.
	Proc, HostRoot string
	// StateDir keeps the wish and the engine configuration as it was.
	StateDir string
	// Self is the agent's plugin name as the engine lists it (name:tag).
	Self string
	// Seen says whether the agent's authorization hook saw the probe
	// nonce (Rules.Seen).
	Seen func(nonce string) bool

	// mu serialises turning the guard on and off (it waits on the engine);
	// fileMu the edits of the engine's file, which the disable hook makes
	// while the engine waits on it: never held across an engine call.
	mu, fileMu sync.Mutex
}

func (g *Guard) wantedPath() string { return filepath.Join(g.StateDir, "wanted") }

// Wanted says whether the guard is to be on.
func (g *Guard) Wanted() bool {
	_, err := os.Stat(g.wantedPath())
	return err == nil
}

// daemon finds the engine and its configuration file.
func (g *Guard) daemon(ctx context.Context) (Daemon, ConfigFile, error) {
	info, err := g.Engine.Info(ctx, client.InfoOptions{})
	if err != nil {
		return Daemon{}, ConfigFile{}, fmt.Errorf("engine: %w", err)
	}
	d, err := FindDaemon(g.Proc, g.HostRoot, info.Info.DockerRootDir)
	if err != nil {
		return Daemon{}, ConfigFile{}, err
	}
	return d, ConfigFile{Path: hostPath(g.HostRoot, d.ConfigFile), StateDir: g.StateDir, Plugin: g.Self}, nil
}

// hostPath is a host's file through its root mounted at root, following
// a symbolic link (configuration management often links daemon.json): the
// file the engine reads is the one changed, the link stays a link.
func hostPath(root, path string) string {
	p := filepath.Join(root, path)
	for range 8 {
		target, err := os.Readlink(p)
		if err != nil {
			return p
		}
		if filepath.IsAbs(target) {
			p = filepath.Join(root, target)
		} else {
			p = filepath.Join(filepath.Dir(p), target)
		}
	}
	return p
}

// Set turns the guard on or off and waits until the engine shows it.
func (g *Guard) Set(ctx context.Context, on bool) (api.GuardStatus, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.setLocked(ctx, on)
}

func (g *Guard) setLocked(ctx context.Context, on bool) (api.GuardStatus, error) {
	if _, changed := g.configPath(); !on && !changed && !g.Wanted() {
		// Never on here: nothing of the engine's to give back (leave on a
		// host whose dockerd the agent cannot find still works).
		if st, err := g.Status(ctx); err == nil && !st.On {
			return st, nil
		}
	}
	d, cfg, err := g.daemon(ctx)
	if err != nil {
		return api.GuardStatus{}, err
	}
	if err := os.MkdirAll(g.StateDir, 0o700); err != nil {
		return api.GuardStatus{}, err
	}
	if err := os.WriteFile(filepath.Join(g.StateDir, "config-path"), []byte(cfg.Path), 0o600); err != nil {
		return api.GuardStatus{}, err
	}
	if !on {
		if err := os.Remove(g.wantedPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return api.GuardStatus{}, err
		}
		if _, err := g.edit(cfg.Remove); err != nil {
			return api.GuardStatus{}, err
		}
		return g.apply(ctx, d, cfg, false)
	}
	if d.FlagPlugins {
		return api.GuardStatus{}, errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf(
			"the engine was started with --authorization-plugin, so its configuration file may not list plugins: add %s to that flag by hand instead", g.Self))
	}
	if err := g.enabled(ctx); err != nil {
		return api.GuardStatus{}, err
	}
	if err := os.WriteFile(g.wantedPath(), nil, 0o600); err != nil {
		return api.GuardStatus{}, err
	}
	if _, err := g.edit(cfg.Add); err != nil {
		return api.GuardStatus{}, err
	}
	st, err := g.apply(ctx, d, cfg, true)
	if err != nil {
		// Never leave the engine half on: its file as it was.
		_ = os.Remove(g.wantedPath())
		if changed, rerr := g.edit(cfg.Remove); rerr == nil && changed {
			_ = d.Reload()
		}
	}
	return st, err
}

// enabled refuses while the engine has the agent's plugin disabled: a
// reload that names a disabled plugin stops the engine.
func (g *Guard) enabled(ctx context.Context) error {
	p, err := g.Engine.PluginInspect(ctx, g.Self, client.PluginInspectOptions{})
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	if !p.Plugin.Enabled {
		return errdefs.ErrFailedPrecondition.WithMessage(g.Self + " is disabled: enable it first")
	}
	return nil
}

// apply has the engine reload its configuration and waits until its list
// of authorization plugins shows the agent (on) or not.
func (g *Guard) apply(ctx context.Context, d Daemon, cfg ConfigFile, on bool) (api.GuardStatus, error) {
	st, err := g.Status(ctx)
	if err == nil && st.On == on {
		return st, nil
	}
	if err := d.Reload(); err != nil {
		return st, err
	}
	deadline := time.Now().Add(settle)
	for {
		st, err = g.Status(ctx)
		if err == nil && st.On == on {
			return st, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("the engine did not take %s %s its authorization plugins after a reload (its log says why)", g.Self, map[bool]string{true: "into", false: "out of"}[on])
			}
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Status is the guard as the engine has it now: on when the engine
// consults the agent (a probe reaches it). The engine's own list of
// authorization plugins (docker info) is the one it started with: a reload
// changes what it consults, not that list.
func (g *Guard) Status(ctx context.Context) (api.GuardStatus, error) {
	on, err := g.consulted(ctx)
	if err != nil {
		return api.GuardStatus{}, err
	}
	st := api.GuardStatus{On: on, Wanted: g.Wanted()}
	if on {
		st.Plugins = []string{g.Self}
	}
	return st, nil
}

// consulted lists the engine's containers by a name only this call knows
// (none has it: an empty answer, and nothing in the engine's log), and
// says whether the agent's hook saw the request.
func (g *Guard) consulted(ctx context.Context) (bool, error) {
	nonce := rand.Text()
	_, err := g.Engine.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("name", probePrefix+nonce)})
	if err != nil {
		return false, fmt.Errorf("engine: %w", err)
	}
	return g.Seen != nil && g.Seen(nonce), nil
}

// Resume puts the guard back on after the agent started, if it is wanted:
// once the engine has enabled the plugin (it dials the agent's socket
// first), so that the reload finds it.
func (g *Guard) Resume(ctx context.Context) {
	if !g.Wanted() {
		return
	}
	for g.Wanted() {
		err := g.enabled(ctx)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	// Under the lock, and only if still wanted: a --guard=false that came
	// while this agent waited for its plugin must not be undone.
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.Wanted() {
		return
	}
	if _, err := g.setLocked(ctx, true); err != nil {
		log.Printf("guard: putting it back on: %v", err)
	}
}

// SelfDisabling takes the agent off the engine's configuration file (not
// off the running engine, which drops a plugin it disables by itself): the
// wish stays, and the agent puts it back when it is enabled again.
func (g *Guard) SelfDisabling() { g.fileOnly(false) }

// SelfDisableFailed puts the file back as it was: the plugin stays enabled.
func (g *Guard) SelfDisableFailed() { g.fileOnly(true) }

func (g *Guard) fileOnly(add bool) {
	// No engine call here: the engine is waiting on this answer.
	path, ok := g.configPath()
	if !ok || add && !g.Wanted() {
		return
	}
	cfg := ConfigFile{Path: path, StateDir: g.StateDir, Plugin: g.Self}
	op := cfg.Remove
	if add {
		op = cfg.Add
	}
	if _, err := g.edit(op); err != nil {
		log.Printf("guard: %v", err)
	}
}

// edit changes the engine's file under fileMu.
func (g *Guard) edit(op func() (bool, error)) (bool, error) {
	g.fileMu.Lock()
	defer g.fileMu.Unlock()
	return op()
}

// configPath is the engine configuration the guard last changed, from its
// own record (no engine call).
func (g *Guard) configPath() (string, bool) {
	b, err := os.ReadFile(filepath.Join(g.StateDir, "config-path"))
	return string(b), err == nil && len(b) > 0
}
