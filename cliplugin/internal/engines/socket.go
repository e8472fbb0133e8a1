package engines

import (
	"context"
	"net/url"
	"strings"

	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
)

// SetSocket names the engine's API socket on its host (init's
// --engine-socket), above anything LearnSocket would find.
func (e *Engine) SetSocket(path string) { e.socket, e.named = path, true }

// LearnSocket finds where the engine's API socket is on its host when the
// context does not say it plainly (ssh://, tcp://), and returns how it
// knows ("" when the context said it). An ssh context may name it as its
// path. Otherwise an agent already installed there was told by an earlier
// init: keeping that beats looking anew, so that init through another
// context of the same host changes nothing that works. Otherwise the
// engine is asked (probeSocket). What cannot be learned leaves the default,
// and the error says why: the engine is checked later.
func (e *Engine) LearnSocket(ctx context.Context) (string, error) {
	if e.named {
		return "named by --engine-socket", nil
	}
	if strings.HasPrefix(e.Host, "unix://") {
		return "", nil
	}
	// ssh://user@host/path: docker's ssh helper dials that socket there.
	if u, err := url.Parse(e.Host); err == nil && u.Scheme == "ssh" && strings.Trim(u.Path, "/") != "" {
		e.socket = u.Path
		return "", nil
	}
	if res, err := e.Client.PluginInspect(ctx, labels.AgentPlugin, client.PluginInspectOptions{}); err == nil {
		for _, m := range res.Plugin.Settings.Mounts {
			if m.Name == api.MountSocket && m.Source != nil && *m.Source != "" {
				e.socket = *m.Source
				return "kept from its agent", nil
			}
		}
	}
	p, err := e.probeSocket(ctx)
	if err != nil {
		return "", err
	}
	e.socket = p
	return "found by probing the host", nil
}
