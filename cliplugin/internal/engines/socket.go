package engines

import (
	"context"
	"net/url"
	"strings"

	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
)

// LearnSocket finds where the engine's API socket is on its host when the
// context does not say it plainly (ssh://, tcp://). An ssh context may name
// it as its path. Otherwise an agent already installed there was told by an
// earlier init, from a context that could: keeping that beats guessing the
// default anew, which would point a working agent at another socket. Errors
// leave the default: the engine is checked later.
func (e *Engine) LearnSocket(ctx context.Context) {
	if strings.HasPrefix(e.Host, "unix://") {
		return
	}
	// ssh://user@host/path: docker's ssh helper dials that socket there.
	if u, err := url.Parse(e.Host); err == nil && u.Scheme == "ssh" && strings.Trim(u.Path, "/") != "" {
		e.socket = u.Path
		return
	}
	res, err := e.Client.PluginInspect(ctx, labels.AgentPlugin, client.PluginInspectOptions{})
	if err != nil {
		return
	}
	for _, m := range res.Plugin.Settings.Mounts {
		if m.Name == api.MountSocket && m.Source != nil && *m.Source != "" {
			e.socket = *m.Source
		}
	}
}
