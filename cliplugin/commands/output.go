package commands

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	units "github.com/docker/go-units"

	"github.com/docker-fleet/fleet/cliplugin/internal/deploy"
	"github.com/docker-fleet/fleet/shared/api"
)

// renderContainers is the table create, scale and resize print.
func renderContainers(out io.Writer, cs []api.FleetContainer) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tNODE\tCPUSET\tMEMORY\tIP")
	for _, c := range cs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", c.Name, c.Node, dash(c.Cpuset), memoryString(c.Memory), dash(c.IP))
	}
	return w.Flush()
}

func memoryString(n int64) string {
	if n <= 0 {
		return "-"
	}
	return units.BytesSize(float64(n))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// renderPlan is create --dry-run's plan, section by section.
func renderPlan(out io.Writer, p *deploy.Plan) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if p.Project != "" {
		fmt.Fprintf(w, "PROJECT %s\n\n", p.Project)
	}
	if len(p.Builds) > 0 {
		fmt.Fprintln(w, "BUILD\tIMAGE\tON\tCONTEXT\tDOCKERFILE")
		for _, b := range p.Builds {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", b.Service, b.Image, b.Node, b.Context, b.Dockerfile)
		}
		fmt.Fprintln(w)
	}
	if len(p.Images) > 0 {
		fmt.Fprintln(w, "IMAGE\tNODE\tHOW")
		for _, i := range p.Images {
			how := i.Action
			switch i.Action {
			case deploy.ImageSend:
				how += " from " + i.From
			case deploy.ImagePull:
				how += " (no node has it)"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\n", i.Image, i.Node, how)
		}
		fmt.Fprintln(w)
	}
	var waves []string
	for _, wave := range p.Order {
		waves = append(waves, strings.Join(wave, ", "))
	}
	fmt.Fprintf(w, "ORDER\t%s\n\n", strings.Join(waves, "; then "))
	fmt.Fprintln(w, "REPLICA\tNODE\tCPUS\tMEMORY\tAFTER")
	for _, r := range p.Replicas {
		cpus := "-"
		if r.Cores > 0 {
			cpus = strconv.Itoa(r.Cores)
		} else if r.Cpuset != "" {
			cpus = "cpuset " + r.Cpuset
		}
		var after []string
		for _, dep := range slices.Sorted(maps.Keys(r.After)) {
			after = append(after, dep+" "+strings.TrimPrefix(r.After[dep], "service_"))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Node, cpus, memoryString(r.Memory), dash(strings.Join(after, ", ")))
	}
	if len(p.LeftOut) > 0 {
		fmt.Fprintln(w, "\nSERVICE\tLEFT OUT\tWHY")
		for _, l := range p.LeftOut {
			fmt.Fprintf(w, "%s\t%s\t%s\n", l.Service, l.Node, l.Why)
		}
	}
	fmt.Fprintln(w, "\n(dry run: nothing was built, sent, stored or created)")
	return w.Flush()
}

// renderApply writes what applying a file to its project did or would do.
func renderApply(out io.Writer, r *deploy.ApplyResult) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "PROJECT %s\n\n", r.Project)
	fmt.Fprintln(w, "SERVICE\tACTION\tCHANGES")
	for _, c := range r.Changes {
		fmt.Fprintf(w, "%s\t%s\t%s\n", c.Service, c.Action, dash(strings.Join(c.Fields, ", ")))
	}
	fmt.Fprintln(w)
	if err := w.Flush(); err != nil {
		return err
	}
	if r.Plan != nil {
		return renderPlan(out, r.Plan)
	}
	for _, u := range r.Updated {
		fmt.Fprintf(out, "%s: %s, revision %d to %d\n", u.Service, u.State, u.From, u.To)
	}
	if len(r.Created) > 0 {
		return renderContainers(out, r.Created)
	}
	return nil
}
