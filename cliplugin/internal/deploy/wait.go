package deploy

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/containerd/errdefs"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
)

// DefaultWaitTimeout bounds a wait for the services a wave depends on.
const DefaultWaitTimeout = 2 * time.Minute

// waitPoll is how often a wait reads the fleet again.
const waitPoll = time.Second

// runWaves makes the replicas wave by wave (spec.Order): a wave's replicas
// are made once every service they depend on is ready. It returns what it
// made, also on failure, for the caller to undo.
func (d *Deployer) runWaves(ctx context.Context, p *prepared, svcs []spec.Service, timeout time.Duration) ([]api.FleetContainer, error) {
	if timeout <= 0 {
		timeout = DefaultWaitTimeout
	}
	var made []api.FleetContainer
	for i, wave := range p.waves {
		if i > 0 {
			if err := d.waitFor(ctx, needsOf(wave, svcs), made, timeout); err != nil {
				return made, err
			}
		}
		var jobs []job
		for _, j := range p.work {
			if slices.Contains(wave, j.req.Service.Name) {
				jobs = append(jobs, j)
			}
		}
		m, err := d.run(ctx, jobs)
		made = append(made, m...)
		if err != nil {
			return made, err
		}
	}
	sort.Slice(made, func(i, j int) bool { return made[i].Name < made[j].Name })
	return made, nil
}

// need is a service that others wait for, and what for.
type need struct {
	service string
	// cond is the strongest asked: healthy includes started, and completed
	// outranks both. A one-shot service is healthy only on its way to
	// exiting, and one wave's wait cannot see both; once it completed it
	// has been started, so the dependants that asked less are made later
	// than they needed, never too early.
	cond string
	by   []string // the services that wait
}

// needsOf is what a wave's services wait for, by service.
func needsOf(wave []string, svcs []spec.Service) []need {
	byDep := map[string]*need{}
	for _, s := range svcs {
		if !slices.Contains(wave, s.Name) {
			continue
		}
		for dep, cond := range s.DependsOn {
			n := byDep[dep]
			if n == nil {
				n = &need{service: dep, cond: cond}
				byDep[dep] = n
			}
			if condRank(cond) > condRank(n.cond) {
				n.cond = cond
			}
			n.by = append(n.by, s.Name)
		}
	}
	var out []need
	for _, dep := range slices.Sorted(maps.Keys(byDep)) {
		n := byDep[dep]
		slices.Sort(n.by)
		out = append(out, *n)
	}
	return out
}

// condRank orders the conditions for needsOf: the strongest one asked of
// a service is the one waited for.
func condRank(cond string) int {
	switch cond {
	case spec.DependsCompleted:
		return 2
	case spec.DependsHealthy:
		return 1
	}
	return 0
}

// condWord is how messages say a condition.
func condWord(cond string) string {
	switch cond {
	case spec.DependsHealthy:
		return "healthy"
	case spec.DependsCompleted:
		return "completed successfully"
	}
	return "running"
}

// waitFor reads the fleet until the replicas made of every needed service
// meet its condition, one of them never can, or timeout passes.
func (d *Deployer) waitFor(ctx context.Context, needs []need, made []api.FleetContainer, timeout time.Duration) error {
	replicas := map[string][]string{}
	for _, c := range made {
		replicas[c.Service] = append(replicas[c.Service], c.Name)
	}
	for _, n := range needs {
		d.say("waiting for %s to be %s before making %s", n.service, condWord(n.cond), strings.Join(n.by, ", "))
	}
	deadline := time.Now().Add(timeout)
	for {
		inv, err := d.inventory(ctx)
		if err != nil {
			return err
		}
		var pending []string
		for _, n := range needs {
			done, why, err := ready(n, replicas[n.service], inv)
			if err != nil {
				return err
			}
			if !done {
				pending = append(pending, fmt.Sprintf("service %s waited %s for %s to be %s: %s", strings.Join(n.by, ", "), timeout, n.service, condWord(n.cond), why))
			}
		}
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return errdefs.ErrUnavailable.WithMessage(strings.Join(pending, "; ") + " (give --wait-timeout to wait longer)")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(waitPoll):
		}
	}
}

// ready says whether the named replicas meet n's condition in inv: done;
// not yet, and what they are stuck at; or never (an error): a replica
// that exited with no restart policy to start it again, or, for healthy,
// one that is unhealthy or has no healthcheck. For completed, exiting is
// the point: never is an exit code other than 0, or one not reported.
func ready(n need, names []string, inv fleet.Inventory) (done bool, why string, err error) {
	never := func(format string, args ...any) (bool, string, error) {
		return false, "", errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf("service %s depends on %s being %s, but ", strings.Join(n.by, ", "), n.service, condWord(n.cond)) + fmt.Sprintf(format, args...))
	}
	var stuck []string
	for _, name := range names {
		c, node, ok := inv.Find(name)
		exited := c.State == "exited" || c.State == "dead"
		switch {
		case !ok:
			stuck = append(stuck, name+" is on no node that answers")
		case n.cond == spec.DependsCompleted:
			switch {
			case !exited && c.State == "running":
				stuck = append(stuck, fmt.Sprintf("%s on %s is still running", name, node.Hostname))
			case !exited:
				stuck = append(stuck, fmt.Sprintf("%s on %s is %s", name, node.Hostname, c.State))
			case c.ExitCode == nil:
				// An agent older than FleetContainer.ExitCode: success
				// cannot be told from failure.
				return never("%s on %s %s, and the agent on %s does not report exit codes; upgrade the fleet with docker fleet init", name, node.Hostname, c.State, node.Hostname)
			case *c.ExitCode != 0:
				return never("%s on %s exited with code %d", name, node.Hostname, *c.ExitCode)
			}
		case exited:
			if c.Restart == "" {
				return never("%s on %s %s, and has no restart policy", name, node.Hostname, c.State)
			}
			stuck = append(stuck, fmt.Sprintf("%s on %s is %s", name, node.Hostname, c.State))
		case c.State != "running":
			stuck = append(stuck, fmt.Sprintf("%s on %s is %s", name, node.Hostname, c.State))
		case n.cond != spec.DependsHealthy:
		case c.Health == "healthy":
		case c.Health == "":
			return never("%s has no healthcheck (none in the file or its image)", name)
		case c.Health == "unhealthy":
			return never("%s on %s is unhealthy", name, node.Hostname)
		default:
			stuck = append(stuck, fmt.Sprintf("%s on %s is running, health %s", name, node.Hostname, c.Health))
		}
	}
	return len(stuck) == 0, strings.Join(stuck, ", "), nil
}
