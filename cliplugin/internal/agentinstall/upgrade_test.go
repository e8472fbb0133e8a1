package agentinstall

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/plugin"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/labels"
)

// fakePlugins is an engine's plugins as agentinstall uses them; an enable
// fails where failEnable says (by plugin name and whether its settings
// carry bad).
type fakePlugins struct {
	client.APIClient
	plugins    map[string]*plugin.Plugin
	failEnable func(name string, p *plugin.Plugin) bool
	log        []string
}

func (f *fakePlugins) get(name string) (*plugin.Plugin, error) {
	p, ok := f.plugins[name]
	if !ok {
		return nil, errdefs.ErrNotFound
	}
	return p, nil
}

func (f *fakePlugins) PluginInspect(_ context.Context, name string, _ client.PluginInspectOptions) (client.PluginInspectResult, error) {
	p, err := f.get(name)
	if err != nil {
		return client.PluginInspectResult{}, err
	}
	return client.PluginInspectResult{Plugin: *p}, nil
}

func (f *fakePlugins) PluginCreate(_ context.Context, _ io.Reader, o client.PluginCreateOptions) (client.PluginCreateResult, error) {
	if _, ok := f.plugins[o.RepoName]; ok {
		return client.PluginCreateResult{}, errdefs.ErrConflict
	}
	f.plugins[o.RepoName] = &plugin.Plugin{Name: o.RepoName}
	return client.PluginCreateResult{}, nil
}

func (f *fakePlugins) PluginSet(_ context.Context, name string, o client.PluginSetOptions) (client.PluginSetResult, error) {
	p, err := f.get(name)
	if err != nil {
		return client.PluginSetResult{}, err
	}
	if p.Enabled {
		return client.PluginSetResult{}, errors.New("cannot set on an active plugin, disable plugin before setting")
	}
	set := asInstalled(o.Args)
	env := map[string]string{}
	for _, kv := range append(p.Settings.Env, set.Settings.Env...) {
		k, _, _ := strings.Cut(kv, "=")
		env[k] = kv
	}
	p.Settings.Env = nil
	for _, kv := range env {
		p.Settings.Env = append(p.Settings.Env, kv)
	}
	p.Settings.Mounts = set.Settings.Mounts
	f.log = append(f.log, "set "+name)
	return client.PluginSetResult{}, nil
}

func (f *fakePlugins) PluginEnable(_ context.Context, name string, _ client.PluginEnableOptions) (client.PluginEnableResult, error) {
	p, err := f.get(name)
	if err != nil {
		return client.PluginEnableResult{}, err
	}
	for n, o := range f.plugins {
		if o.Enabled && n != name {
			return client.PluginEnableResult{}, errors.New("two agents on one port")
		}
	}
	if f.failEnable != nil && f.failEnable(name, p) {
		f.log = append(f.log, "enable "+name+" failed")
		return client.PluginEnableResult{}, errors.New("dial unix …/fleet.sock: connect: no such file or directory")
	}
	p.Enabled = true
	f.log = append(f.log, "enable "+name)
	return client.PluginEnableResult{}, nil
}

func (f *fakePlugins) PluginDisable(_ context.Context, name string, _ client.PluginDisableOptions) (client.PluginDisableResult, error) {
	p, err := f.get(name)
	if err != nil {
		return client.PluginDisableResult{}, err
	}
	p.Enabled = false
	f.log = append(f.log, "disable "+name)
	return client.PluginDisableResult{}, nil
}

func (f *fakePlugins) PluginRemove(_ context.Context, name string, _ client.PluginRemoveOptions) (client.PluginRemoveResult, error) {
	if _, err := f.get(name); err != nil {
		return client.PluginRemoveResult{}, err
	}
	delete(f.plugins, name)
	f.log = append(f.log, "remove "+name)
	return client.PluginRemoveResult{}, nil
}

// tinyPlugin is a plugin tarball of a config.json alone, built b.
func tinyPlugin(t *testing.T, b string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	cfg := []byte(`{"description":"` + b + `","linux":{"capabilities":[]}}`)
	assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "config.json", Mode: 0o644, Size: int64(len(cfg))}))
	_, err := tw.Write(cfg)
	assert.NilError(t, err)
	assert.NilError(t, tw.Close())
	assert.NilError(t, gz.Close())
	return buf.Bytes()
}

func running(f *fakePlugins, s Settings, build string) *plugin.Plugin {
	p := asInstalled(s.args(build, "token0"))
	p.Name, p.Enabled = labels.AgentPlugin, true
	f.plugins[labels.AgentPlugin] = &p
	return &p
}

var testSettings = Settings{Node: "h2", Port: 7477, CA: []byte("ca"), Socket: "/run/docker.sock", DataRoot: "/var/lib/docker", HostRoot: "/"}

// TestUpgradeThatDoesNotStartPutsTheOldAgentBack: a new build whose agent
// does not start leaves the old one enabled, as it was, and nothing of the
// trial; the error says so.
func TestUpgradeThatDoesNotStartPutsTheOldAgentBack(t *testing.T) {
	ctx := context.Background()
	f := &fakePlugins{plugins: map[string]*plugin.Plugin{}}
	old := running(f, testSettings, "old")
	f.failEnable = func(name string, _ *plugin.Plugin) bool { return name == trialPlugin }
	err := upgrade(ctx, f, *old, tinyPlugin(t, "new"), testSettings, "new", "token1", nil)
	assert.ErrorContains(t, err, "the new agent did not start, so the old one runs again")
	p, ok := f.plugins[labels.AgentPlugin]
	assert.Assert(t, ok, "the old agent is still installed")
	assert.Check(t, p.Enabled, "and enabled: %v", f.log)
	assert.Check(t, is.Equal(current(*p, envBuild), "old"))
	_, trial := f.plugins[trialPlugin]
	assert.Check(t, !trial, "no trial left: %v", f.log)
}

// TestUpgradeReplacesTheAgentUnderItsName: a new build that starts ends as
// the one agent, under the plugin's own name.
func TestUpgradeReplacesTheAgentUnderItsName(t *testing.T) {
	ctx := context.Background()
	f := &fakePlugins{plugins: map[string]*plugin.Plugin{}}
	old := running(f, testSettings, "old")
	assert.NilError(t, upgrade(ctx, f, *old, tinyPlugin(t, "new"), testSettings, "new", "token1", nil))
	assert.Check(t, is.Len(f.plugins, 1), "one agent: %v", f.log)
	p := f.plugins[labels.AgentPlugin]
	assert.Assert(t, p != nil)
	assert.Check(t, p.Enabled)
	assert.Check(t, is.Equal(current(*p, envBuild), "new"))
	assert.Check(t, is.DeepEqual(f.log, []string{
		"disable " + labels.AgentPlugin, "set " + trialPlugin, "enable " + trialPlugin,
		"disable " + trialPlugin, "remove " + labels.AgentPlugin,
		"set " + labels.AgentPlugin, "enable " + labels.AgentPlugin, "remove " + trialPlugin,
	}))
}

// TestReconfigureThatDoesNotStartGivesTheOldSettingsBack: settings with
// which the agent does not start (another port taken) are undone.
func TestReconfigureThatDoesNotStartGivesTheOldSettingsBack(t *testing.T) {
	ctx := context.Background()
	f := &fakePlugins{plugins: map[string]*plugin.Plugin{}}
	old := running(f, testSettings, "b")
	f.failEnable = func(_ string, p *plugin.Plugin) bool { return current(*p, "FLEET_PORT") == "7478" }
	changed := testSettings
	changed.Port = 7478
	err := reconfigure(ctx, f, *old, changed, "b", "token1", nil)
	assert.ErrorContains(t, err, "the agent runs again with the settings it had")
	p := f.plugins[labels.AgentPlugin]
	assert.Check(t, p.Enabled)
	assert.Check(t, is.Equal(current(*p, "FLEET_PORT"), "7477"))
	assert.Check(t, sameSettings(*p, testSettings), "%v", p.Settings)
}

// fakeHandover logs its calls into the engine's log; Drain fails with busy.
type fakeHandover struct {
	f    *fakePlugins
	busy error
}

func (h fakeHandover) Drain(context.Context) error {
	h.f.log = append(h.f.log, "drain")
	return h.busy
}

func (h fakeHandover) Resume(context.Context) { h.f.log = append(h.f.log, "resume") }

// TestUpgradeDrainsTheOldAgentFirst: the old agent is drained before it is
// disabled; one that is still busy stays as it was, and so does the rest.
func TestUpgradeDrainsTheOldAgentFirst(t *testing.T) {
	ctx := context.Background()
	f := &fakePlugins{plugins: map[string]*plugin.Plugin{}}
	old := running(f, testSettings, "old")
	assert.NilError(t, upgrade(ctx, f, *old, tinyPlugin(t, "new"), testSettings, "new", "token1", fakeHandover{f: f}))
	assert.Check(t, is.DeepEqual(f.log[:2], []string{"drain", "disable " + labels.AgentPlugin}))

	f = &fakePlugins{plugins: map[string]*plugin.Plugin{}}
	old = running(f, testSettings, "old")
	busy := errors.New("h2: migration 0a1b of web.1 did not end")
	err := upgrade(ctx, f, *old, tinyPlugin(t, "new"), testSettings, "new", "token1", fakeHandover{f: f, busy: busy})
	assert.Check(t, errors.Is(err, busy), "%v", err)
	p := f.plugins[labels.AgentPlugin]
	assert.Assert(t, p != nil)
	assert.Check(t, p.Enabled && current(*p, envBuild) == "old", "%v", f.log)
	assert.Check(t, is.Len(f.plugins, 1), "no trial left: %v", f.log)
	assert.Check(t, !slices.Contains(f.log, "disable "+labels.AgentPlugin), "%v", f.log)

	// A reconfigure drains too.
	f = &fakePlugins{plugins: map[string]*plugin.Plugin{}}
	old = running(f, testSettings, "b")
	changed := testSettings
	changed.Port = 7478
	assert.NilError(t, reconfigure(ctx, f, *old, changed, "b", "token1", fakeHandover{f: f}))
	assert.Check(t, is.DeepEqual(f.log[:2], []string{"drain", "disable " + labels.AgentPlugin}))
}
