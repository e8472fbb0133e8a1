package spec

import (
	"fmt"
	"maps"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Options are the plain container options of a service's replicas, given
// to the engine as `docker run` gives them (Compose's keys of the same
// names). They move with a replica on migration.
type Options struct {
	User       string `json:"user,omitempty"`
	WorkingDir string `json:"workingDir,omitempty"`
	// Hostname, when empty, is the replica's name (web.1).
	Hostname        string    `json:"hostname,omitempty"`
	StopSignal      string    `json:"stopSignal,omitempty"`
	StopGracePeriod *Duration `json:"stopGracePeriod,omitempty"`
	StdinOpen       bool      `json:"stdinOpen,omitempty"`
	Tty             bool      `json:"tty,omitempty"`
	Init            bool      `json:"init,omitempty"`
	ReadOnly        bool      `json:"readOnly,omitempty"`
	CapAdd          []string  `json:"capAdd,omitempty"`
	CapDrop         []string  `json:"capDrop,omitempty"`
	// Sysctls are namespaced kernel parameters (net.*, kernel.shm*, …).
	Sysctls    map[string]string `json:"sysctls,omitempty"`
	Ulimits    []Ulimit          `json:"ulimits,omitempty"`
	ExtraHosts []string          `json:"extraHosts,omitempty"`
	// Tmpfs maps a path in the container to its mount options ("size=64m").
	Tmpfs   map[string]string `json:"tmpfs,omitempty"`
	ShmSize int64             `json:"shmSize,omitempty"`
	// Restart is docker's restart policy: no, always, unless-stopped,
	// on-failure[:N].
	Restart     string       `json:"restart,omitempty"`
	Logging     *Logging     `json:"logging,omitempty"`
	Healthcheck *Healthcheck `json:"healthcheck,omitempty"`
	// Expose lists ports the container exposes without publishing them
	// ("80", "53/udp").
	Expose []string `json:"expose,omitempty"`
	// DNS, DNSSearch and DNSOptions are the container's resolver settings.
	DNS        []string `json:"dns,omitempty"`
	DNSSearch  []string `json:"dnsSearch,omitempty"`
	DNSOptions []string `json:"dnsOptions,omitempty"`
	PidsLimit  int64    `json:"pidsLimit,omitempty"`
	// NoNewPrivileges is security_opt's no-new-privileges: a flag of the
	// process, not a host's policy, so it moves with it.
	NoNewPrivileges bool `json:"noNewPrivileges,omitempty"`
	// Unconfined are security_opt's values that turn a host's policy off
	// (UnconfinedOpts, in docker's KEY=VALUE form): the same on every
	// host, unlike a profile or label, so they move with the replica.
	Unconfined []string `json:"unconfined,omitempty"`
	// NetworkMode is "" (the fleet network) or HostNetwork: the replica
	// then runs on its node's own network, as `docker run --network host`,
	// and cannot migrate (Service.Validate says what it excludes).
	NetworkMode string `json:"networkMode,omitempty"`
}

// HostNetwork is the one NetworkMode besides the fleet network.
const HostNetwork = "host"

// UnconfinedOpts are the security_opt values taken besides
// no-new-privileges, in docker's form.
var UnconfinedOpts = []string{"apparmor=unconfined", "label=disable", "seccomp=unconfined"}

// UnconfinedOpt gives a security_opt value of UnconfinedOpts in docker's
// form, taking the older KEY:VALUE too; ok is false for any other value.
func UnconfinedOpt(v string) (opt string, ok bool) {
	k, val, found := strings.Cut(v, "=")
	if !found {
		k, val, _ = strings.Cut(v, ":")
	}
	opt = k + "=" + val
	return opt, slices.Contains(UnconfinedOpts, opt)
}

// Ulimit is a resource limit (nofile, nproc, …); -1 is unlimited.
type Ulimit struct {
	Name string `json:"name"`
	Soft int64  `json:"soft"`
	Hard int64  `json:"hard"`
}

// Logging is a log driver and its options.
type Logging struct {
	Driver  string            `json:"driver,omitempty"`
	Options map[string]string `json:"options,omitempty"`
}

// Healthcheck is the container's health test, as the image's HEALTHCHECK
// or Compose's healthcheck. Test is docker's form: ["CMD", …],
// ["CMD-SHELL", "…"], or ["NONE"] to turn the image's off.
type Healthcheck struct {
	Test          []string `json:"test,omitempty"`
	Interval      Duration `json:"interval,omitempty"`
	Timeout       Duration `json:"timeout,omitempty"`
	StartPeriod   Duration `json:"startPeriod,omitempty"`
	StartInterval Duration `json:"startInterval,omitempty"`
	Retries       int      `json:"retries,omitempty"`
}

// RestartPolicy splits a restart policy into docker's name and its
// maximum retries (on-failure:N).
func RestartPolicy(v string) (name string, retries int, err error) {
	name, n, hasN := strings.Cut(v, ":")
	switch name {
	case "", "no", "always", "unless-stopped":
		if hasN {
			return "", 0, fmt.Errorf("%q: only on-failure takes a number of retries", v)
		}
	case "on-failure":
		if hasN {
			if retries, err = strconv.Atoi(n); err != nil || retries < 0 {
				return "", 0, fmt.Errorf("%q: the retries after on-failure: are a number", v)
			}
		}
	default:
		return "", 0, fmt.Errorf("%q: use no, always, unless-stopped or on-failure[:N]", v)
	}
	return name, retries, nil
}

var (
	capability = regexp.MustCompile(`^(?i)(CAP_)?[A-Z_]+$|^ALL$`)
	sysctlKey  = regexp.MustCompile(`^[a-z0-9_]+(\.[a-zA-Z0-9_*-]+)+$`)
	ulimitName = regexp.MustCompile(`^[a-z]+$`)
	exposeForm = regexp.MustCompile(`^[0-9]+(-[0-9]+)?(/(tcp|udp|sctp))?$`)
	signalForm = regexp.MustCompile(`^(?i)(SIG)?[A-Z0-9+-]+$|^[0-9]+$`)
)

// validate checks the options as docker would, naming the Compose key (or
// flag) at fault.
func (o *Options) validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fieldErr(field, format, args...))
	}
	o.validatePrivileges(bad)
	o.validateNamesAndLimits(bad)
	if o.Healthcheck != nil {
		validateHealthcheck(o.Healthcheck, bad)
	}
	return errs
}

// validatePrivileges is validate's first phase: the restart policy,
// capabilities, kernel parameters, limits and tmpfs mounts.
func (o *Options) validatePrivileges(bad func(field, format string, args ...any)) {
	if _, _, err := RestartPolicy(o.Restart); err != nil {
		bad("restart", "%v", err)
	}
	for key, caps := range [][]string{o.CapAdd, o.CapDrop} {
		for _, c := range caps {
			if !capability.MatchString(c) {
				bad([]string{"cap_add", "cap_drop"}[key], "%q is not a capability name (such as NET_ADMIN)", c)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(o.Sysctls)) {
		if !sysctlKey.MatchString(k) {
			bad("sysctls", "%q is not a kernel parameter name (such as net.core.somaxconn)", k)
		}
	}
	for _, u := range o.Ulimits {
		if !ulimitName.MatchString(u.Name) {
			bad("ulimits", "%q is not a limit name (such as nofile)", u.Name)
		} else if u.Hard != -1 && (u.Soft > u.Hard || u.Soft == -1) {
			bad("ulimits", "%s: soft limit %d is above the hard limit %d", u.Name, u.Soft, u.Hard)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(o.Tmpfs)) {
		if !path.IsAbs(p) || path.Clean(p) != p {
			bad("tmpfs", "%q: an absolute, clean path in the container", p)
		}
	}
}

// validateNamesAndLimits is validate's second phase: hosts, ports, the stop
// signal and grace period, DNS servers, security options, the network mode
// and the pids and shm limits.
func (o *Options) validateNamesAndLimits(bad func(field, format string, args ...any)) {
	for _, h := range o.ExtraHosts {
		if name, ip, ok := strings.Cut(h, ":"); !ok || name == "" || ip == "" {
			if name, ip, ok = strings.Cut(h, "="); !ok || name == "" || ip == "" {
				bad("extra_hosts", "%q: use HOST:IP", h)
			}
		}
	}
	for _, e := range o.Expose {
		if !exposeForm.MatchString(e) {
			bad("expose", "%q: a port or range, with /tcp, /udp or /sctp", e)
		}
	}
	if o.StopSignal != "" && !signalForm.MatchString(o.StopSignal) {
		bad("stop_signal", "%q is not a signal (such as SIGTERM)", o.StopSignal)
	}
	if o.StopGracePeriod != nil && *o.StopGracePeriod < 0 {
		bad("stop_grace_period", "%s is negative", *o.StopGracePeriod)
	}
	for _, d := range o.DNS {
		if _, err := netip.ParseAddr(d); err != nil {
			bad("dns", "%q is not an IP address", d)
		}
	}
	for _, u := range o.Unconfined {
		if opt, ok := UnconfinedOpt(u); !ok || opt != u {
			bad("security_opt", "%q: only no-new-privileges, %s are taken: a seccomp or AppArmor profile or an SELinux label is one host's policy, which another node may lack, and a restored process must keep the very same",
				u, strings.Join(UnconfinedOpts, ", "))
		}
	}
	if o.NetworkMode != "" && o.NetworkMode != HostNetwork {
		bad("network_mode", "%q: only host is taken (or none, for the fleet network)", o.NetworkMode)
	}
	if o.PidsLimit < -1 {
		bad("pids_limit", "%d: a number of processes, or -1 for unlimited", o.PidsLimit)
	}
	if o.ShmSize < 0 {
		bad("shm_size", "%d is negative", o.ShmSize)
	}
}

// validateHealthcheck is validate's last phase, for a healthcheck that is set.
func validateHealthcheck(h *Healthcheck, bad func(field, format string, args ...any)) {
	if len(h.Test) > 0 {
		switch h.Test[0] {
		case "NONE":
		case "CMD", "CMD-SHELL":
			if len(h.Test) < 2 {
				bad("healthcheck.test", "%s needs a command", h.Test[0])
			}
		default:
			bad("healthcheck.test", "%q: start with CMD, CMD-SHELL or NONE", h.Test[0])
		}
	}
	for _, f := range []struct {
		key string
		d   Duration
	}{{"interval", h.Interval}, {"timeout", h.Timeout}, {"start_period", h.StartPeriod}, {"start_interval", h.StartInterval}} {
		if f.d < 0 || (f.d > 0 && time.Duration(f.d) < time.Millisecond) {
			bad("healthcheck."+f.key, "%s: at least 1ms, or 0 for the default", f.d)
		}
	}
	if h.Retries < 0 {
		bad("healthcheck.retries", "%d is negative", h.Retries)
	}
}

// Keys names the options that are set, by their Compose keys, for messages
// that say what an older agent could not do.
func (o *Options) Keys() []string {
	var k []string
	add := func(set bool, key string) {
		if set {
			k = append(k, key)
		}
	}
	add(o.User != "", "user")
	add(o.WorkingDir != "", "working_dir")
	add(o.Hostname != "", "hostname")
	add(o.StopSignal != "", "stop_signal")
	add(o.StopGracePeriod != nil, "stop_grace_period")
	add(o.StdinOpen, "stdin_open")
	add(o.Tty, "tty")
	add(o.Init, "init")
	add(o.ReadOnly, "read_only")
	add(len(o.CapAdd) > 0, "cap_add")
	add(len(o.CapDrop) > 0, "cap_drop")
	add(len(o.Sysctls) > 0, "sysctls")
	add(len(o.Ulimits) > 0, "ulimits")
	add(len(o.ExtraHosts) > 0, "extra_hosts")
	add(len(o.Tmpfs) > 0, "tmpfs")
	add(o.ShmSize != 0, "shm_size")
	add(o.Restart != "", "restart")
	add(o.Logging != nil, "logging")
	add(o.Healthcheck != nil, "healthcheck")
	add(len(o.Expose) > 0, "expose")
	add(len(o.DNS)+len(o.DNSSearch)+len(o.DNSOptions) > 0, "dns")
	add(o.PidsLimit != 0, "pids_limit")
	add(o.NoNewPrivileges || len(o.Unconfined) > 0, "security_opt")
	add(o.NetworkMode != "", "network_mode")
	return k
}
