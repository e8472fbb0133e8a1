// Package versions gathers what `docker fleet version` shows: this
// docker-fleet's version and API, every node's agent, engine and CRIU, and
// where the two speak different API versions (api.APIVersion).
package versions

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/version"
)

// Report is this docker-fleet and the fleet's nodes.
type Report struct {
	Client Client `json:"client"`
	Nodes  []Node `json:"nodes"`
}

// Client is this docker-fleet.
type Client struct {
	Version string `json:"version"`
	API     int    `json:"api"`
}

// Node is one node's agent and what it runs on; only Node and Error when
// its agent did not answer.
type Node struct {
	Node         string `json:"node"`
	AgentVersion string `json:"agentVersion,omitempty"`
	API          int    `json:"api,omitempty"`
	Engine       string `json:"engine,omitempty"`
	CRIU         string `json:"criu,omitempty"`
	Error        string `json:"error,omitempty"`
}

// This is this docker-fleet's own part of the report.
func This() Client {
	return Client{Version: version.Version, API: api.APIVersion}
}

// Gather asks every node's agent of the fleet, all at once.
func Gather(ctx context.Context, f *fleet.Fleet) (*Report, error) {
	infos, err := f.Infos(ctx)
	if err != nil {
		return nil, err
	}
	return Of(This(), infos), nil
}

// Of is the report of client over what the nodes' agents said.
func Of(client Client, infos []fleet.NodeInfo) *Report {
	r := &Report{Client: client, Nodes: make([]Node, 0, len(infos))}
	for _, n := range infos {
		v := Node{Node: n.Hostname}
		if n.Err != nil {
			v.Error = n.Err.Error()
		} else {
			v.AgentVersion = n.Info.AgentVersion
			v.API = n.Info.API()
			v.Engine = n.Info.Engine.Version
			v.CRIU = n.Info.CRIU.Version
		}
		r.Nodes = append(r.Nodes, v)
	}
	return r
}

// Skew says, a line per node whose agent speaks another API version than
// this docker-fleet, what follows from it and what to do.
func (r *Report) Skew() []string {
	var out []string
	for _, n := range r.Nodes {
		switch {
		case n.Error != "" || n.API == r.Client.API:
		case n.API < r.Client.API:
			out = append(out, fmt.Sprintf("%s: agent %s speaks API %d, this docker-fleet speaks %d: upgrade it with docker fleet init",
				n.Node, n.AgentVersion, n.API, r.Client.API))
		default:
			out = append(out, fmt.Sprintf("%s: agent %s speaks API %d, newer than this docker-fleet (%d): what this docker-fleet knows works there; upgrade docker-fleet for the rest",
				n.Node, n.AgentVersion, n.API, r.Client.API))
		}
	}
	return out
}

// RenderClient prints this docker-fleet's line.
func RenderClient(out io.Writer, c Client) error {
	_, err := fmt.Fprintf(out, "Client: docker-fleet %s (API %d)\n", c.Version, c.API)
	return err
}

// Render prints the report as a table, then the skew lines.
func Render(out io.Writer, r *Report) error {
	if err := RenderClient(out, r.Client); err != nil {
		return err
	}
	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tAGENT\tAPI\tENGINE\tCRIU\tSTATUS")
	for _, n := range r.Nodes {
		if n.Error != "" {
			fmt.Fprintf(w, "%s\t-\t-\t-\t-\t%s\n", n.Node, n.Error)
			continue
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\treachable\n", n.Node, dash(n.AgentVersion), n.API, dash(n.Engine), dash(n.CRIU))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if skew := r.Skew(); len(skew) > 0 {
		fmt.Fprintln(out)
		for _, line := range skew {
			fmt.Fprintln(out, line)
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
