package describe

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// RenderFleet writes the fleet view as text.
func RenderFleet(out io.Writer, v *FleetView) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Manager:\t%s\n", v.Manager)
	fmt.Fprintf(w, "Network:\t%s (%s, %s)\n", v.Network.Name, v.Network.Driver, v.Network.Subnet)
	fmt.Fprintf(w, "Up:\t%s (since %s)\n", units.HumanDuration(time.Duration(v.Totals.Uptime*float64(time.Second))), v.Created.Local().Format(time.RFC3339))
	fmt.Fprintf(w, "Totals:\t%d nodes (%d ready to migrate), %d CPUs, %s memory, %d containers, %d migrations\n",
		v.Totals.Nodes, v.Totals.ReadyNodes, v.Totals.CPUs, units.BytesSize(float64(v.Totals.Memory)), v.Totals.Containers, v.Totals.Migrations)
	renderFailover(w, v.Failover)
	renderRebalance(w, v.Rebalance)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "NODE\tROLE\tSTATE\tADDRESS\tCPUS\tCPU %\tMEMORY\tCONTAINERS\tMIGRATION")
	for _, n := range v.Nodes {
		role := n.Role
		if n.Leader {
			role += " (leader)"
		}
		cpus, cpu, mem, ctrs := "-", "-", "-", "-"
		if n.Info != nil {
			cpus = fmt.Sprint(n.Info.NCPU)
		}
		if m := n.Metrics; m != nil {
			cpu = fmt.Sprintf("%.1f%%", m.CPU.Percent)
			mem = units.BytesSize(float64(m.Memory.Used)) + " / " + units.BytesSize(float64(m.Memory.Total))
			ctrs = fmt.Sprint(len(m.Containers))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Hostname, role, n.State, n.Addr, cpus, cpu, mem, ctrs, Migration(n.Info, n.Error))
	}
	for _, l := range Limits(v.Nodes) {
		fmt.Fprintf(w, "  limited: %s\n", l)
	}
	fmt.Fprintln(w)
	if len(v.Services) == 0 {
		fmt.Fprintln(w, "Services:\tnone")
	} else {
		fmt.Fprintln(w, "SERVICE\tIMAGE\tDESIRED\tRUNNING\tCORES\tMEMORY")
		for _, s := range v.Services {
			fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%s\n", s.Name, s.Spec.Image, s.Desired, s.Running, coresOf(s.Spec), bytesOrDash(s.Spec.Memory))
		}
	}
	return w.Flush()
}

// RenderNode writes one node's view as text.
func RenderNode(out io.Writer, v NodeView) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	role := v.Role
	if v.Leader {
		role += ", leader"
	}
	fmt.Fprintf(w, "Node:\t%s (%s, %s, %s, %s)\n", v.Hostname, role, v.State, v.Availability, v.Addr)
	fmt.Fprintf(w, "ID:\t%s\n", v.ID)
	if v.Error != "" {
		fmt.Fprintf(w, "Agent:\tunreachable: %s\n", v.Error)
	}
	if i := v.Info; i != nil {
		exp := "experimental off"
		if i.Engine.Experimental {
			exp = "experimental"
		}
		fmt.Fprintf(w, "Engine:\t%s (API %s, %s, data root %s)\n", i.Engine.Version, i.Engine.APIVersion, exp, i.Engine.DataRoot)
		fmt.Fprintf(w, "Runtime:\tcontainerd %s, runc %s, cgroup v%s\n", orUnknown(i.Engine.Containerd), orUnknown(i.Engine.Runc), orUnknown(i.Engine.CgroupVersion))
		fmt.Fprintf(w, "CRIU:\t%s\n", criuLine(i.CRIU))
		fmt.Fprintf(w, "Agent:\t%s at %s:%d\n", i.AgentVersion, v.Addr, v.AgentPort)
		if !i.CertNotAfter.IsZero() {
			fmt.Fprintf(w, "Certificate:\tnode, expires %s (in %d days; `docker fleet init` renews it)\n",
				i.CertNotAfter.UTC().Format(time.DateOnly), int(time.Until(i.CertNotAfter).Hours()/24))
		}
		fmt.Fprintf(w, "Kernel:\t%s\n", i.Kernel)
		fmt.Fprintf(w, "Migration:\t%s\n", Migration(i, ""))
		for _, p := range i.Migration.Problems {
			fmt.Fprintf(w, "\t- %s\n", p)
		}
		for _, l := range i.Migration.Limits {
			fmt.Fprintf(w, "\t- limited: %s\n", l)
		}
		fmt.Fprintf(w, "Capabilities:\t%s\n", capsLine(i.Capabilities))
		if g := i.Guard; g != nil {
			switch {
			case g.On:
				fmt.Fprintf(w, "Guard:\ton (the engine consults the agent: %s)\n", strings.Join(g.Plugins, ", "))
			case g.Wanted:
				fmt.Fprintln(w, "Guard:\twanted, not on yet (the agent puts it back once its plugin is enabled)")
			default:
				fmt.Fprintln(w, "Guard:\toff")
			}
		}
	}
	if m := v.Metrics; m != nil {
		fmt.Fprintf(w, "Uptime:\t%s\n", units.HumanDuration(time.Duration(m.Uptime*float64(time.Second))))
		fmt.Fprintf(w, "Memory:\t%s used of %s (%s available)\n", units.BytesSize(float64(m.Memory.Used)), units.BytesSize(float64(m.Memory.Total)), units.BytesSize(float64(m.Memory.Available)))
		fmt.Fprintf(w, "CPU:\t%.1f%% of %d cores\n", m.CPU.Percent, len(m.CPU.Cores))
		fmt.Fprintln(w)
		holder := map[int]string{}
		if v.Ledger != nil {
			for _, h := range v.Ledger.Held {
				holder[h.Core] = h.Container
				if !h.Fleet {
					holder[h.Core] += " (outside the fleet)"
				}
			}
		}
		if v.Ledger != nil {
			fmt.Fprintf(w, "Shared pool:\tcores %s (every container without exclusive cores runs there)\n", v.Ledger.SharedPool())
		}
		fmt.Fprintln(w, "CORE\tUSAGE\tHELD BY")
		for _, c := range m.CPU.Cores {
			fmt.Fprintf(w, "%d\t%.1f%%\t%s\n", c.ID, c.Percent, orDash(holder[c.ID]))
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "INTERFACE\tRX\tTX\tRX PACKETS\tTX PACKETS")
		ifs := append([]api.Interface(nil), m.Network...)
		sort.Slice(ifs, func(a, b int) bool { return ifs[a].Name < ifs[b].Name })
		for _, i := range ifs {
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\n", i.Name, units.BytesSize(float64(i.RxBytes)), units.BytesSize(float64(i.TxBytes)), i.RxPackets, i.TxPackets)
		}
		fmt.Fprintln(w)
		if len(m.Containers) == 0 {
			fmt.Fprintln(w, "Containers:\tnone")
		} else {
			fmt.Fprintln(w, "CONTAINER\tIMAGE\tSTATE\tSERVICE")
			for _, c := range m.Containers {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", c.Name, c.Image, c.State, orDash(c.Service))
			}
		}
	}
	return w.Flush()
}

// Migration is the MIGRATION column: "ready", or what is missing.
func Migration(info *api.Info, agentErr string) string {
	switch {
	case info == nil && agentErr != "":
		return "no: agent unreachable"
	case info == nil:
		return "-"
	case info.Migration.Ready:
		return "ready"
	default:
		return "no: " + strings.Join(info.Migration.Problems, "; ")
	}
}

func criuLine(c api.CRIUInfo) string {
	if c.Version == "" {
		return "none: " + c.Error
	}
	s := fmt.Sprintf("%s (post-copy/lazy-pages %s, pre-copy/mem-track %s)", c.Version, yesNo(c.Features.LazyPages), yesNo(c.Features.MemTrack))
	if len(c.Patches) > 0 {
		s += ", the fleet's build (" + strings.Join(c.Patches, ", ") + ")"
	}
	if c.Error != "" {
		s += ": " + c.Error
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// RenderService writes one service's view as text.
func RenderService(out io.Writer, s ServiceView) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Service:\t%s\n", s.Name)
	fmt.Fprintf(w, "Image:\t%s\n", s.Spec.Image)
	fmt.Fprintf(w, "Replicas:\t%d desired, %d running\n", s.Desired, s.Running)
	fmt.Fprintf(w, "Per replica:\t%s exclusive cores, %s memory\n", coresOf(s.Spec), bytesOrDash(s.Spec.Memory))
	if p := placementOf(s.Spec); p != "" {
		fmt.Fprintf(w, "Placement:\t%s\n", p)
	}
	if s.Spec.Revision != 0 || s.Update != nil {
		fmt.Fprintf(w, "Revision:\t%d\n", s.Spec.Revision)
	}
	if u := s.Update; u != nil {
		fmt.Fprintf(w, "Update:\t%s, revision %d to %d (started %s", u.State, u.From, u.To, u.StartedAt)
		if u.EndedAt != "" {
			fmt.Fprintf(w, ", ended %s", u.EndedAt)
		}
		fmt.Fprintln(w, ")")
		if u.Reason != "" {
			fmt.Fprintf(w, "  why:\t%s\n", u.Reason)
		}
	}
	if p := s.Previous; p != nil {
		fmt.Fprintf(w, "Previous:\trevision %d, image %s (docker fleet update --rollback %s)\n", p.Revision, p.Image, s.Name)
	}
	nodes := make([]string, 0, len(s.PerNode))
	for n := range s.PerNode {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		fmt.Fprintf(w, "  %s:\t%d running\n", n, s.PerNode[n])
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "CONTAINER\tNODE\tSTATE\tCPUSET\tMEMORY\tIP\tREVISION")
	for _, c := range s.Containers {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", c.Name, c.Node, c.State, orDash(c.Cpuset), bytesOrDash(c.Memory), orDash(c.IP), c.Revision)
	}
	return w.Flush()
}

// RenderContainer writes one container's view as text.
func RenderContainer(out io.Writer, c ContainerView) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Container:\t%s (service %s, replica %d)\n", c.Name, c.Service, c.Replica)
	fmt.Fprintf(w, "Node:\t%s\n", c.Node)
	fmt.Fprintf(w, "State:\t%s (pid %d, started %s)\n", c.State, c.Pid, c.StartedAt)
	if c.Health != "" {
		fmt.Fprintf(w, "Health:\t%s\n", c.Health)
	}
	if c.Restart != "" {
		fmt.Fprintf(w, "Restart:\t%s\n", c.Restart)
	}
	fmt.Fprintf(w, "Image:\t%s\n", c.Image)
	excl := "shared"
	if c.Exclusive {
		excl = "exclusive"
	}
	fmt.Fprintf(w, "Cpuset:\t%s (%s)\n", orDash(c.Cpuset), excl)
	fmt.Fprintf(w, "CPU:\t%.1f%%\n", c.CPUPercent)
	fmt.Fprintf(w, "Memory:\t%s used, limit %s\n", units.BytesSize(float64(c.MemoryUsage)), bytesOrDash(c.Memory))
	fmt.Fprintf(w, "IP:\t%s (aliases %s)\n", orDash(c.IP), strings.Join(c.Aliases, ", "))
	for _, n := range c.Networks {
		fmt.Fprintf(w, "Network %s:\trx %s, tx %s\n", n.Name, units.BytesSize(float64(n.RxBytes)), units.BytesSize(float64(n.TxBytes)))
	}
	if c.Checkpoint != nil {
		fmt.Fprintf(w, "Checkpoints:\t%s\n", checkpointLine(*c.Checkpoint, time.Now()))
	}
	if len(c.Migrations) == 0 {
		fmt.Fprintln(w, "Migrations:\tnone")
	}
	for _, m := range c.Migrations {
		fmt.Fprintf(w, "Migrated:\t%s from %s to %s, downtime %.2fs, total %.1fs, %s\n",
			m.Time, m.From, m.To, m.Downtime, m.Total, units.HumanSize(float64(m.Bytes)))
		if m.By != "" {
			fmt.Fprintf(w, "\t  by %s\n", m.By)
		}
		if m.Phases != nil {
			fmt.Fprintf(w, "\t  %s\n", m.Phases)
		}
	}
	return w.Flush()
}

// placementOf is where the replicas may go, as constraints ("" for any
// node): --node is node.hostname==, as a Compose file writes it.
func placementOf(s spec.Service) string {
	var out []string
	if s.Node != "" {
		out = append(out, spec.ConstraintHostname+"=="+s.Node)
	}
	return strings.Join(append(out, s.Constraints...), ", ")
}

func coresOf(s spec.Service) string {
	switch {
	case s.Cpuset != "":
		return s.Cpuset
	case s.Cores > 0:
		return fmt.Sprint(s.Cores)
	}
	return "-"
}

func bytesOrDash(n int64) string {
	if n <= 0 {
		return "-"
	}
	return units.BytesSize(float64(n))
}

// orUnknown is a version an engine did not report.
func orUnknown(v string) string {
	if v == "" {
		return "?"
	}
	return v
}

func renderFailover(w io.Writer, fo Failover) {
	after := "off"
	if fo.After > 0 {
		after = "after " + fo.After.String()
	}
	fmt.Fprintf(w, "Failover:\t%s; %d node failure(s), %d container(s) relocated (%d cold, %d warm)\n",
		after, fo.Failures, fo.RelocationsCold+fo.RelocationsWarm, fo.RelocationsCold, fo.RelocationsWarm)
	for _, d := range fo.Down {
		fmt.Fprintf(w, "Down:\t%s since %s\n", d.Node, d.Since.Local().Format(time.RFC3339))
	}
}

func renderRebalance(w io.Writer, auto swarmstore.AutoRebalance) {
	if auto.Every <= 0 {
		fmt.Fprintln(w, "Rebalance:\twhen asked (docker fleet rebalance; init --rebalance-every makes it automatic)")
		return
	}
	fmt.Fprintf(w, "Rebalance:\tevery %s by the swarm leader's agent, at most %d live migration(s) each time\n", auto.Every, auto.MaxMoves)
}

// checkpointLine is where a container's background checkpoints stand:
// "every 30s to standby h3, newest 12s ago (frozen 0.21s, 140MB)".
func checkpointLine(cp api.CheckpointStatus, now time.Time) string {
	s := "every " + cp.Every
	switch {
	case cp.Standby == "":
		s += ", no standby node chosen yet"
	case cp.At.IsZero():
		s += " to standby " + cp.Standby + ", none complete yet"
	default:
		// At is the container's node's clock: a skew must not read "-1s ago".
		age := max(now.Sub(cp.At), 0).Round(time.Second)
		s += fmt.Sprintf(" to standby %s, newest %s ago (frozen %.2fs, %s)", cp.Standby, age, cp.Frozen, units.HumanSize(float64(cp.Bytes)))
	}
	if cp.Error != "" {
		s += "; last failed: " + cp.Error
	}
	return s
}
