package workloads

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/docker-fleet/fleet/shared/spec"
)

// applyOptions gives a replica its plain container options, as `docker
// run` would (Config for what is portable, HostConfig for the rest).
func applyOptions(cfg *container.Config, host *container.HostConfig, o spec.Options) error {
	cfg.User, cfg.WorkingDir, cfg.StopSignal = o.User, o.WorkingDir, o.StopSignal
	cfg.OpenStdin, cfg.Tty = o.StdinOpen, o.Tty
	if o.Hostname != "" {
		cfg.Hostname = o.Hostname
	}
	if o.StopGracePeriod != nil {
		s := int(time.Duration(*o.StopGracePeriod).Round(time.Second) / time.Second)
		cfg.StopTimeout = &s
	}
	for _, e := range o.Expose {
		port, err := network.ParsePort(withProto(e))
		if err != nil {
			return fmt.Errorf("expose: %q: %w", e, err)
		}
		cfg.ExposedPorts[port] = struct{}{}
	}
	if h := o.Healthcheck; h != nil {
		cfg.Healthcheck = &container.HealthConfig{Test: h.Test, Interval: time.Duration(h.Interval),
			Timeout: time.Duration(h.Timeout), StartPeriod: time.Duration(h.StartPeriod),
			StartInterval: time.Duration(h.StartInterval), Retries: h.Retries}
	}

	host.CapAdd, host.CapDrop = o.CapAdd, o.CapDrop
	host.Sysctls, host.Tmpfs, host.ShmSize = o.Sysctls, o.Tmpfs, o.ShmSize
	host.ExtraHosts, host.ReadonlyRootfs = o.ExtraHosts, o.ReadOnly
	host.DNS, host.DNSSearch, host.DNSOptions = dnsServers(o.DNS), o.DNSSearch, o.DNSOptions
	if o.PidsLimit != 0 {
		host.PidsLimit = &o.PidsLimit
	}
	if o.NoNewPrivileges {
		host.SecurityOpt = []string{noNewPrivileges}
	}
	host.SecurityOpt = append(host.SecurityOpt, o.Unconfined...)
	if o.Init {
		host.Init = &o.Init
	}
	for _, u := range o.Ulimits {
		host.Ulimits = append(host.Ulimits, &container.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	name, retries, err := spec.RestartPolicy(o.Restart)
	if err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	host.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyMode(name), MaximumRetryCount: retries}
	if l := o.Logging; l != nil {
		host.LogConfig = container.LogConfig{Type: l.Driver, Config: l.Options}
	}
	return nil
}

// noNewPrivileges is a security option a fleet container may have: a flag
// of its processes, not a host's policy. The others turn a host's policy
// off (spec.UnconfinedOpts), the same on every host.
const noNewPrivileges = "no-new-privileges"

func dnsServers(list []string) []netip.Addr {
	var out []netip.Addr
	for _, s := range list {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// withProto gives a port without a protocol docker's default, tcp.
func withProto(p string) string {
	if strings.Contains(p, "/") {
		return p
	}
	return p + "/tcp"
}

// CarryHostConfig is what a migration's twin takes over from its source's
// host configuration: the container options a fleet container may have
// (applyOptions), nothing tied to the source host (binds, devices, cpuset,
// namespaces), which the twin gets from its own node or not at all. The
// destination checks the capabilities and sets the log configuration from
// the operator's announcement (migrate's checkPrivileges,
// withAnnouncedLogging).
func CarryHostConfig(src *container.HostConfig) container.HostConfig {
	var h container.HostConfig
	if src == nil {
		return h
	}
	h.CapAdd, h.CapDrop = slices.Clone(src.CapAdd), slices.Clone(src.CapDrop)
	h.Sysctls, h.Tmpfs = maps.Clone(src.Sysctls), maps.Clone(src.Tmpfs)
	h.ShmSize, h.ReadonlyRootfs, h.Init = src.ShmSize, src.ReadonlyRootfs, src.Init
	h.ExtraHosts = slices.Clone(src.ExtraHosts)
	h.RestartPolicy, h.LogConfig = src.RestartPolicy, src.LogConfig
	h.Ulimits = slices.Clone(src.Ulimits)
	h.DNS, h.DNSSearch, h.DNSOptions = slices.Clone(src.DNS), slices.Clone(src.DNSSearch), slices.Clone(src.DNSOptions)
	h.PidsLimit = src.PidsLimit
	// no-new-privileges first, as applyOptions gives it; a profile or
	// label of the source host stays behind.
	for _, o := range src.SecurityOpt {
		if o == noNewPrivileges || o == noNewPrivileges+":true" || o == noNewPrivileges+"=true" {
			h.SecurityOpt = []string{noNewPrivileges}
		}
	}
	for _, o := range src.SecurityOpt {
		if opt, ok := spec.UnconfinedOpt(o); ok && !slices.Contains(h.SecurityOpt, opt) {
			h.SecurityOpt = append(h.SecurityOpt, opt)
		}
	}
	return h
}

// Unconfined are the security options of a host configuration that turn a
// host's policy off (spec.UnconfinedOpts), as CarryHostConfig keeps them.
func Unconfined(hc *container.HostConfig) []string {
	var out []string
	for _, o := range CarryHostConfig(hc).SecurityOpt {
		if o != noNewPrivileges {
			out = append(out, o)
		}
	}
	return out
}

// CarriedOptions names the options of a source's host configuration that
// a twin takes over (CarryHostConfig), for what an older destination
// would drop.
func CarriedOptions(src *container.HostConfig) []string {
	h := CarryHostConfig(src)
	var k []string
	add := func(set bool, key string) {
		if set {
			k = append(k, key)
		}
	}
	add(len(h.CapAdd) > 0, "cap_add")
	add(len(h.CapDrop) > 0, "cap_drop")
	add(len(h.Sysctls) > 0, "sysctls")
	add(len(h.Tmpfs) > 0, "tmpfs")
	// The engine's default /dev/shm is 64 MiB; it reports it as set.
	add(h.ShmSize != 0 && h.ShmSize != 64<<20, "shm_size")
	add(h.ReadonlyRootfs, "read_only")
	add(h.Init != nil && *h.Init, "init")
	add(len(h.ExtraHosts) > 0, "extra_hosts")
	add(Restarts(h.RestartPolicy), "restart")
	add(len(h.Ulimits) > 0, "ulimits")
	add(len(h.DNS)+len(h.DNSSearch)+len(h.DNSOptions) > 0, "dns")
	add(h.PidsLimit != nil && *h.PidsLimit > 0, "pids_limit")
	add(len(h.SecurityOpt) > 0, "security_opt")
	return k
}

// Restarts says whether the engine would start a container again by
// itself once it exits.
func Restarts(p container.RestartPolicy) bool {
	return p.Name != "" && p.Name != container.RestartPolicyDisabled
}
