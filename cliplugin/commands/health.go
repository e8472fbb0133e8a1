package commands

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/docker-fleet/fleet/shared/spec"
)

// healthOptions are docker run's healthcheck flags, for create and update.
type healthOptions struct {
	cmd           string
	interval      time.Duration
	timeout       time.Duration
	startPeriod   time.Duration
	startInterval time.Duration
	retries       int
	none          bool
}

func (h *healthOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&h.cmd, "health-cmd", "", "Command to run to check health (run by the container's shell)")
	f.DurationVar(&h.interval, "health-interval", 0, "Time between running the check (ms|s|m|h)")
	f.DurationVar(&h.timeout, "health-timeout", 0, "Maximum time to allow one check to run (ms|s|m|h)")
	f.DurationVar(&h.startPeriod, "health-start-period", 0, "Start period for the container to initialize before counting retries (ms|s|m|h)")
	f.DurationVar(&h.startInterval, "health-start-interval", 0, "Time between running the check during the start period (ms|s|m|h)")
	f.IntVar(&h.retries, "health-retries", 0, "Consecutive failures needed to report unhealthy")
	f.BoolVar(&h.none, "no-healthcheck", false, "Disable any container-specified HEALTHCHECK")
}

// set says whether any health flag was given.
func (h *healthOptions) set(f *pflag.FlagSet) bool {
	for _, n := range []string{"health-cmd", "health-interval", "health-timeout", "health-start-period", "health-start-interval", "health-retries", "no-healthcheck"} {
		if f.Changed(n) {
			return true
		}
	}
	return false
}

// apply changes a healthcheck (nil: none given yet) by the flags given,
// as docker service update does: a flag not given keeps its value.
func (h *healthOptions) apply(f *pflag.FlagSet, cur *spec.Healthcheck) (*spec.Healthcheck, error) {
	if !h.set(f) {
		return cur, nil
	}
	if h.none {
		if h.cmd != "" || f.Changed("health-interval") || f.Changed("health-timeout") || f.Changed("health-retries") || f.Changed("health-start-period") {
			return nil, errors.New("--no-healthcheck conflicts with the other --health-* flags")
		}
		return &spec.Healthcheck{Test: []string{"NONE"}}, nil
	}
	out := spec.Healthcheck{}
	if cur != nil {
		out = *cur
	}
	if h.cmd != "" {
		out.Test = []string{"CMD-SHELL", h.cmd}
	}
	if len(out.Test) == 0 || out.Test[0] == "NONE" {
		return nil, errors.New("--health-*: give --health-cmd too: the service has no healthcheck to change")
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
		to   *spec.Duration
	}{{"health-interval", h.interval, &out.Interval}, {"health-timeout", h.timeout, &out.Timeout},
		{"health-start-period", h.startPeriod, &out.StartPeriod}, {"health-start-interval", h.startInterval, &out.StartInterval}} {
		if f.Changed(d.flag) {
			if d.v < 0 {
				return nil, fmt.Errorf("--%s %s: negative", d.flag, d.v)
			}
			*d.to = spec.Duration(d.v)
		}
	}
	if f.Changed("health-retries") {
		if h.retries < 0 {
			return nil, fmt.Errorf("--health-retries %d: negative", h.retries)
		}
		out.Retries = h.retries
	}
	return &out, nil
}
