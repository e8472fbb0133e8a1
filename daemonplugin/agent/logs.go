package agent

import (
	"context"
	"encoding/json"
	"log"
	"net/http"

	"github.com/containerd/errdefs"

	"github.com/docker-fleet/fleet/daemonplugin/logstore"
	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
)

// serveLogs streams a container's logs as JSON lines (api.LogsSuffix): its
// live log here, or (kept=1) the parts this node kept of that name.
// Refusals come as statuses before the stream; a failure after it started
// is its last line.
func (a *Agent) serveLogs(w http.ResponseWriter, r *http.Request) {
	ctx, name := r.Context(), r.PathValue("name")
	q, err := api.ParseLogsQuery(r.URL.Query())
	if err != nil {
		reply(w, nil, workloads.Refuse(errdefs.ErrInvalidArgument, "logs: %v", err))
		return
	}
	if q.Kept {
		// Read whole (a name keeps logstore.MaxPerName here at most), so
		// that a failure still has its status.
		lines, err := a.logs.Read(name, q)
		if err != nil {
			reply(w, nil, err)
			return
		}
		send := streamLines(w, false)
		for _, l := range lines {
			if send(l) != nil {
				return
			}
		}
		return
	}
	if err := logstore.ValidName(name); err != nil {
		reply(w, nil, err)
		return
	}
	rc, tty, err := a.workloads.OpenLogs(ctx, name, q)
	if err != nil {
		reply(w, nil, err)
		return
	}
	defer rc.Close()
	send := streamLines(w, q.Follow)
	err = logstore.Demux(rc, tty, func(l api.LogLine) error {
		l.Node = a.cfg.Node
		return send(l)
	})
	if err != nil && ctx.Err() == nil {
		_ = send(api.LogLine{Error: err.Error()})
	}
}

// streamLines writes lines as JSON, each flushed as it comes when the
// caller follows the log; the first write commits the status (200).
func streamLines(w http.ResponseWriter, flush bool) func(api.LogLine) error {
	w.Header().Set("Content-Type", "application/x-ndjson")
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	return func(l api.LogLine) error {
		if err := enc.Encode(l); err != nil {
			return err
		}
		if flush {
			return rc.Flush()
		}
		return nil
	}
}

// remove is docker fleet rm's removal of a container here: with it go the
// parts of its log this node kept from its earlier stays (the CLI drops
// the other nodes' parts).
func (a *Agent) remove(ctx context.Context, name string) error {
	if err := a.workloads.Remove(ctx, name); err != nil {
		return err
	}
	if err := a.logs.Drop(name); err != nil {
		log.Printf("dropping the kept logs of %s: %v", name, err)
	}
	return nil
}
