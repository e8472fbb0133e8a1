// Command docker-fleet is the docker fleet CLI plugin (`docker fleet …`).
package main

import (
	"os"

	"github.com/docker/cli/cli-plugins/metadata"
	"github.com/docker/cli/cli-plugins/plugin"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-fleet/fleet/cliplugin/commands"
	"github.com/docker-fleet/fleet/shared/version"
)

func main() {
	os.Args = completionArgs(os.Args)
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

// completionArgs puts the plugin's own name back into a completion request
// that lacks it: docker's bash completion script of engines before 23
// (Debian's docker.io) runs "docker-fleet __completeNoDesc migrate …",
// where newer CLIs ask "docker-fleet __complete fleet migrate …".
func completionArgs(args []string) []string {
	if len(args) < 2 || (args[1] != cobra.ShellCompRequestCmd && args[1] != cobra.ShellCompNoDescRequestCmd) {
		return args
	}
	if len(args) > 2 && args[2] == "fleet" {
		return args
	}
	return append([]string{args[0], args[1], "fleet"}, args[2:]...)
}
