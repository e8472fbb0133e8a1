// Package agentinstall creates, configures and enables the agent as a managed
// plugin on an engine through the Engine API, with no registry: the plugin
// tarball travels inside the CLI (see packaging).
package agentinstall

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/plugin"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/packaging"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
)

// envBuild records which plugin tarball a plugin was created from, so that
// init replaces an agent that another build installed.
const envBuild = "FLEET_BUILD"

// Settings are what init sets on the plugin of one node.
type Settings struct {
	Node string
	Port int
	// CA is the fleet CA certificate. The node's key and certificate are
	// no settings: the agent makes its key and init enrolls it (Enroll).
	CA []byte
	// Socket, DataRoot and HostRoot are paths on the node's host.
	Socket   string
	DataRoot string
	HostRoot string
	// Capabilities are those the plugin asks for (see Capabilities): they
	// are fixed when it is created, so other ones mean a new plugin.
	Capabilities []string
}

// Result says what Ensure did.
type Result int

const (
	Unchanged Result = iota
	Installed
	Reconfigured
	Restarted
)

func (r Result) String() string {
	return [...]string{"unchanged", "installed", "reconfigured", "restarted"}[r]
}

// Handover lets the running agent end its work before it is stopped for
// an upgrade or new settings.
type Handover interface {
	// Drain has the agent take no new work and returns once it has none
	// in flight, or an error that names what it still has.
	Drain(ctx context.Context) error
	// Resume has it take work again: it was not stopped after all.
	Resume(ctx context.Context)
}

// Ensure makes the engine run the agent plugin with these settings. A plugin
// that already runs from this build with the same CA, node, port and mounts
// is left alone. On failure, a plugin this call created is removed again.
// A running agent that must stop is drained first through h (nil: none).
// It returns the plugin's enrollment token, which authenticates the agent's
// certificate request (read back from the engine when unchanged).
func Ensure(ctx context.Context, c client.APIClient, s Settings, h Handover) (Result, string, error) {
	tarball, build, err := pluginTarball()
	if err != nil {
		return Unchanged, "", err
	}
	token, err := newToken()
	if err != nil {
		return Unchanged, "", err
	}
	res, err := c.PluginInspect(ctx, labels.AgentPlugin, client.PluginInspectOptions{})
	switch {
	case errdefs.IsNotFound(err):
		return Installed, token, install(ctx, c, tarball, s, build, token)
	case err != nil:
		return Unchanged, "", fmt.Errorf("inspecting plugin %s: %w", labels.AgentPlugin, err)
	}
	p := res.Plugin
	if current(p, envBuild) != build || !sameCaps(p.Config.Linux.Capabilities, s.Capabilities) {
		return Installed, token, upgrade(ctx, c, p, tarball, s, build, token, h)
	}
	if p.Enabled && sameSettings(p, s) {
		return Unchanged, current(p, api.EnvEnrollToken), nil
	}
	if err := reconfigure(ctx, c, p, s, build, token, h); err != nil {
		return Unchanged, "", err
	}
	return Reconfigured, token, nil
}

// trialPlugin is the name a new build of the agent is first tried under,
// while the old one stays installed to be put back.
const trialPlugin = "fleet-agent-next:latest"

// upgrade replaces the agent old with this build, never leaving the node
// without one that works: the new build is first created as trialPlugin
// and enabled in the old one's place (the old one disabled: one port, one
// ledger); only if it starts is the old one removed and the new build made
// under the plugin's own name. If the trial does not start, the old agent
// is enabled again and the error says why. The node has no agent from the
// old one's disable until the new one's enable, twice an agent's start;
// before the disable, the old one is drained (h).
func upgrade(ctx context.Context, c client.APIClient, old plugin.Plugin, tarball []byte, s Settings, build, token string, h Handover) error {
	restore := context.WithoutCancel(ctx)
	_ = removeNamed(restore, c, trialPlugin) // a trial a killed init left
	if err := create(ctx, c, trialPlugin, tarball, s); err != nil {
		return err
	}
	defer func() { _ = removeNamed(restore, c, trialPlugin) }()
	if err := stop(ctx, c, old, h); err != nil {
		return err
	}
	if err := configureNamed(ctx, c, trialPlugin, s, build, token); err != nil {
		_ = removeNamed(restore, c, trialPlugin)
		if !old.Enabled {
			return fmt.Errorf("the new agent did not start, so the old one stays (it was not enabled): %w", err)
		}
		if _, eerr := c.PluginEnable(restore, labels.AgentPlugin, client.PluginEnableOptions{Timeout: 30}); eerr != nil {
			return fmt.Errorf("the new agent did not start (%v), and enabling the old one again failed too: %w", err, eerr)
		}
		return fmt.Errorf("the new agent did not start, so the old one runs again: %w", err)
	}
	if _, err := c.PluginDisable(ctx, trialPlugin, client.PluginDisableOptions{Force: true}); err != nil {
		return fmt.Errorf("disabling plugin %s: %w", trialPlugin, err)
	}
	if err := Remove(ctx, c); err != nil {
		return err
	}
	return install(ctx, c, tarball, s, build, token)
}

// reconfigure sets new settings on the agent; if it then does not start,
// it is given back the settings it had and enabled again.
func reconfigure(ctx context.Context, c client.APIClient, old plugin.Plugin, s Settings, build, token string, h Handover) error {
	if err := stop(ctx, c, old, h); err != nil {
		return err
	}
	err := configure(ctx, c, s, build, token)
	if err == nil || !old.Enabled {
		return err
	}
	restore := context.WithoutCancel(ctx)
	_, _ = c.PluginDisable(restore, labels.AgentPlugin, client.PluginDisableOptions{Force: true})
	if _, serr := c.PluginSet(restore, labels.AgentPlugin, client.PluginSetOptions{Args: settingsArgs(old)}); serr != nil {
		return fmt.Errorf("%w (and giving the agent back its settings failed: %v)", err, serr)
	}
	if _, eerr := c.PluginEnable(restore, labels.AgentPlugin, client.PluginEnableOptions{Timeout: 30}); eerr != nil {
		return fmt.Errorf("%w (and the agent with its old settings did not start either: %v)", err, eerr)
	}
	return fmt.Errorf("%w; the agent runs again with the settings it had", err)
}

// stop drains the running agent old (h) and disables it; an agent that
// cannot be disabled takes work again.
func stop(ctx context.Context, c client.APIClient, old plugin.Plugin, h Handover) error {
	if !old.Enabled {
		return nil
	}
	if h != nil {
		if err := h.Drain(ctx); err != nil {
			return err
		}
	}
	if _, err := c.PluginDisable(ctx, labels.AgentPlugin, client.PluginDisableOptions{Force: true}); err != nil {
		if h != nil {
			h.Resume(context.WithoutCancel(ctx))
		}
		return fmt.Errorf("disabling plugin %s: %w", labels.AgentPlugin, err)
	}
	return nil
}

// settingsArgs are the `plugin set` arguments that give p the settings it
// has now.
func settingsArgs(p plugin.Plugin) []string {
	args := slices.Clone(p.Settings.Env)
	for _, m := range p.Settings.Mounts {
		if m.Source != nil {
			args = append(args, m.Name+".source="+*m.Source)
		}
	}
	return args
}

// newToken is a fresh enrollment token.
func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// Restart disables and enables the agent plugin: an agent whose process
// died (killed, crashed) comes back with the settings it had.
func Restart(ctx context.Context, c client.APIClient) error {
	if _, err := c.PluginDisable(ctx, labels.AgentPlugin, client.PluginDisableOptions{Force: true}); err != nil {
		return fmt.Errorf("disabling plugin %s: %w", labels.AgentPlugin, err)
	}
	if _, err := c.PluginEnable(ctx, labels.AgentPlugin, client.PluginEnableOptions{Timeout: 30}); err != nil {
		return fmt.Errorf("enabling plugin %s: %w", labels.AgentPlugin, err)
	}
	return nil
}

// Remove disables and removes the agent plugin; a missing plugin is fine.
func Remove(ctx context.Context, c client.APIClient) error {
	return removeNamed(ctx, c, labels.AgentPlugin)
}

func removeNamed(ctx context.Context, c client.APIClient, name string) error {
	_, err := c.PluginRemove(ctx, name, client.PluginRemoveOptions{Force: true})
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("removing plugin %s: %w", name, err)
	}
	return nil
}

func install(ctx context.Context, c client.APIClient, tarball []byte, s Settings, build, token string) error {
	if err := create(ctx, c, labels.AgentPlugin, tarball, s); err != nil {
		return err
	}
	if err := configure(ctx, c, s, build, token); err != nil {
		_ = Remove(context.WithoutCancel(ctx), c)
		return err
	}
	return nil
}

// create creates the plugin, disabled, under name. The engine refuses a
// plugin whose root filesystem is that of another one still installed
// ("content … already exists"): the trial gets a marker file of its own,
// so that it can stand beside the old agent (a new capability set alone
// keeps the build) and the new agent beside it.
func create(ctx context.Context, c client.APIClient, name string, tarball []byte, s Settings) error {
	var extra []extraFile
	if name == trialPlugin {
		extra = append(extra, extraFile{name: "rootfs/.fleet-trial", data: []byte("a trial of a new agent, removed once it started\n")})
	}
	tr, err := withCapabilities(tarball, s.Capabilities, extra...)
	if err != nil {
		return err
	}
	if _, err := c.PluginCreate(ctx, tr, client.PluginCreateOptions{RepoName: name}); err != nil {
		return fmt.Errorf("creating plugin %s: %w", name, err)
	}
	return nil
}

// configure sets the settings on the disabled agent plugin and enables it.
func configure(ctx context.Context, c client.APIClient, s Settings, build, token string) error {
	return configureNamed(ctx, c, labels.AgentPlugin, s, build, token)
}

func configureNamed(ctx context.Context, c client.APIClient, name string, s Settings, build, token string) error {
	if _, err := c.PluginSet(ctx, name, client.PluginSetOptions{Args: s.args(build, token)}); err != nil {
		return fmt.Errorf("configuring plugin %s: %w", name, err)
	}
	if _, err := c.PluginEnable(ctx, name, client.PluginEnableOptions{Timeout: 30}); err != nil {
		// The engine only sees that the plugin socket never appeared; the
		// agent's own reason is in the engine's log.
		return fmt.Errorf("enabling plugin %s: the agent did not start (is TCP port %d already in use on that host? "+
			"the engine's log has the agent's reason): %w", name, s.Port, err)
	}
	return nil
}

// args are the `docker plugin set` arguments for s. The CA certificate
// travels base64-encoded: plugin settings are single-line values.
func (s Settings) args(build, token string) []string {
	b64 := base64.StdEncoding.EncodeToString
	return []string{
		api.EnvPort + "=" + strconv.Itoa(s.Port),
		api.EnvNode + "=" + s.Node,
		api.EnvTLSCA + "=" + b64(s.CA),
		api.EnvEnrollToken + "=" + token,
		envBuild + "=" + build,
		api.MountSocket + ".source=" + s.Socket,
		api.MountDataRoot + ".source=" + s.DataRoot,
		api.MountHostRoot + ".source=" + s.HostRoot,
	}
}

// sameSettings compares what matters (the token is the plugin's own).
func sameSettings(p plugin.Plugin, s Settings) bool {
	mounts := map[string]string{}
	for _, m := range p.Settings.Mounts {
		if m.Source != nil {
			mounts[m.Name] = *m.Source
		}
	}
	return current(p, api.EnvPort) == strconv.Itoa(s.Port) &&
		current(p, api.EnvNode) == s.Node &&
		current(p, api.EnvTLSCA) == base64.StdEncoding.EncodeToString(s.CA) &&
		current(p, api.EnvEnrollToken) != "" &&
		mounts[api.MountSocket] == s.Socket &&
		mounts[api.MountDataRoot] == s.DataRoot &&
		mounts[api.MountHostRoot] == s.HostRoot
}

// current is the value of env variable name in the plugin's settings.
func current(p plugin.Plugin, name string) string {
	i := slices.IndexFunc(p.Settings.Env, func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
	if i < 0 {
		return ""
	}
	return strings.TrimPrefix(p.Settings.Env[i], name+"=")
}

// pluginTarball returns the embedded plugin and its build identity (a digest
// of the tarball: it changes whenever the agent or its manifest does).
func pluginTarball() ([]byte, string, error) {
	b, err := packaging.AgentPluginGz()
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:8]), nil
}
