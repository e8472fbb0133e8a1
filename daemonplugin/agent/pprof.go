package agent

import (
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"time"
)

// envPprof, set to 1 (`docker plugin set`), serves Go's profiles on
// pprofSocket, beside the plugin's socket: the engine keeps that
// directory on the host under /run/docker/plugins/PLUGIN_ID/, which only
// the host's root reaches. No TCP port: profiles show the agent's memory.
const envPprof = "FLEET_PPROF"

const pprofSocket = "/run/docker/plugins/pprof.sock"

// servePprof serves the profiles until the agent ends, if asked to.
func servePprof(on bool) {
	if !on {
		return
	}
	_ = os.Remove(pprofSocket)
	if err := os.MkdirAll(filepath.Dir(pprofSocket), 0o700); err != nil {
		log.Printf("pprof: %v", err)
		return
	}
	ln, err := net.Listen("unix", pprofSocket)
	if err != nil {
		log.Printf("pprof: %v", err)
		return
	}
	_ = os.Chmod(pprofSocket, 0o600)
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Printf("pprof on %s (%s=1)", pprofSocket, envPprof)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { log.Printf("pprof: %v", srv.Serve(ln)) }()
}
