package commands

import (
	"fmt"
	"io"
	"text/tabwriter"

	units "github.com/docker/go-units"

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
