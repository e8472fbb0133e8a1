// Command fleet-agent is the docker fleet node agent, run by each engine as
// a managed plugin (see manifest/config.json).
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/docker-fleet/fleet/daemonplugin/agent"
	"github.com/docker-fleet/fleet/daemonplugin/hostexec"
	"github.com/docker-fleet/fleet/daemonplugin/relay"
	"github.com/docker-fleet/fleet/daemonplugin/sockprobe"
	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
)

// startFault is set only by the end-to-end test of an upgrade whose agent
// cannot start (-ldflags -X main.startFault=WHY): the agent exits at once,
// as a broken build would.
var startFault string

func main() {
	if hostexec.IsLauncher(os.Args[0]) {
		err := hostexec.Exec(os.Args)
		fmt.Fprintln(os.Stderr, err)
		os.Exit(127)
	}
	if len(os.Args) > 1 && os.Args[1] == workloads.AnchorArg {
		// The anchor container's process: idle until stopped.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		<-sig
		return
	}
	if len(os.Args) > 1 && os.Args[1] == api.ProbeArg {
		// init's probe for the engine's API socket (engines.LearnSocket).
		os.Exit(sockprobe.Main(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == api.RelayArg {
		// The relay container's process, or one connection through it.
		os.Exit(relay.Main(os.Args[2:]))
	}
	hostexec.SetHostMountNS()
	log.SetFlags(log.LstdFlags | log.Lmsgprefix)
	log.SetPrefix("fleet-agent: ")
	if startFault != "" {
		log.Fatalf("this build cannot start: %s", startFault)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	cfg, err := agent.ConfigFromEnv()
	if err != nil {
		fatal(ctx, cfg, err)
	}
	a, err := agent.New(cfg)
	if err != nil {
		fatal(ctx, cfg, err)
	}
	if err := a.Run(ctx); err != nil {
		fatal(ctx, cfg, err)
	}
}

// fatal ends the agent, unless its engine consults it (the guard): then
// the engine would refuse every request to a plugin that is gone, so the
// agent stays, letting every request through, until it is stopped.
func fatal(ctx context.Context, cfg agent.Config, err error) {
	if !agent.GuardWanted(cfg) {
		log.Fatal(err)
	}
	log.Printf("%v; the guard is on: serving the engine's requests (all allowed) until the agent is restarted", err)
	if serr := agent.ServeAllowAll(ctx, cfg); serr != nil {
		log.Fatal(serr)
	}
}
