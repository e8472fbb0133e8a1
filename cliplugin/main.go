// Command docker-fleet is the docker fleet CLI plugin (`docker fleet …`).
package main

import (
	"github.com/docker/cli/cli-plugins/metadata"
	"github.com/docker/cli/cli-plugins/plugin"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-fleet/fleet/cliplugin/commands"
	"github.com/docker-fleet/fleet/shared/version"
)

func main() {
	plugin.Run(func(dockerCli command.Cli) *cobra.Command {
		return commands.NewRootCommand(dockerCli)
	}, metadata.Metadata{
		SchemaVersion:    "0.1.0",
		Vendor:           "docker fleet",
		Version:          version.Version,
		ShortDescription: "Pin, resize, scale and live-migrate containers across a swarm",
		URL:              "https://github.com/docker-fleet/fleet",
	})
}
