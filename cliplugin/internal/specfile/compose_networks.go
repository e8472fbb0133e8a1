package specfile

import (
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
)

// A Compose file's networks, secrets and configs. Each top-level network a
// service uses becomes an attachable overlay network of the swarm, made by
// create (deploy) under Compose's name for it (PROJECT_KEY, or its name:);
// an external one must exist. Compose's default network is the fleet
// network. Secrets and configs are read here, on the CLI's machine: their
// contents go to the agents alone (Result.Files), the definition keeps
// their names and targets.

// What of them the fleet does; anything else is refused by name.
var (
	composeNetwork        = keys("name", "driver", "driver_opts", "ipam", "external", "internal", "attachable", "labels")
	composeIPAM           = keys("config")
	composeIPAMPool       = keys("subnet", "gateway", "ip_range")
	composeSecret         = keys("name", "file", "environment", "labels")
	composeConfig         = keys("name", "file", "environment", "content", "labels")
	composeServiceNetwork = keys("aliases")
	composeFileReference  = keys("source", "target", "uid", "gid", "mode")
)

// Why keys are refused, by their path within a top-level network, secret
// or config, or a service's network.
const (
	swarmStore  = "it names the swarm's own store, which only swarm services read, and fleet containers are plain containers: give its file:"
	fixedAddr   = "each replica has an address of its own on every network, which it keeps when it migrates"
	overlayOnly = "a fleet's replicas run on several hosts, and only an overlay network spans them"
)

var attachmentWhy = map[string]string{
	"secrets.external":        swarmStore + " or environment:",
	"secrets.driver":          swarmStore + " or environment:",
	"secrets.driver_opts":     swarmStore + " or environment:",
	"secrets.template_driver": "templates are rendered by the swarm's secret store, which plain containers do not use",
	"configs.external":        swarmStore + ", content: or environment:",
	"configs.template_driver": "templates are rendered by the swarm's config store, which plain containers do not use",
	"networks.ipam.driver":    "the swarm allocates the addresses of its overlay networks itself",
	"networks.enable_ipv6":    "the fleet's networks are IPv4",
	"service.ipv4_address":    fixedAddr,
	"service.ipv6_address":    fixedAddr,
	"service.mac_address":     fixedAddr,
	"service.link_local_ips":  fixedAddr,
	"service.priority":        "the fleet network is every replica's first network",
	"service.gw_priority":     "the fleet network is every replica's first network",
}

// checkAttachments refuses, in the raw file, keys of the top-level
// networks, secrets and configs that the fleet would otherwise drop.
func checkAttachments(raw map[string]any) error {
	for _, top := range []struct {
		key     string
		allowed map[string]bool
	}{{"networks", composeNetwork}, {"secrets", composeSecret}, {"configs", composeConfig}} {
		defs, _ := raw[top.key].(map[string]any)
		for _, name := range slices.Sorted(maps.Keys(defs)) {
			def, _ := defs[name].(map[string]any)
			at := top.key + "." + name + "."
			if err := onlyWith(at, top.key+".", def, top.allowed); err != nil {
				return err
			}
			if top.key == "networks" {
				if err := checkNetwork(name, def); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkNetwork refuses a top-level network the fleet cannot make.
func checkNetwork(name string, def map[string]any) error {
	at := "networks." + name
	if name == "default" && len(def) > 0 {
		return fmt.Errorf("%s: not supported by docker fleet: Compose's default network is the fleet network, made by init; give the file's own networks other names", at)
	}
	// A bridge is what Compose makes by default, for an app on one host:
	// on a fleet the same app spans hosts, so it gets an overlay as any
	// other network (bridgeNotice says so).
	if d, ok := def["driver"]; ok && d != "overlay" && d != "bridge" && d != "" && d != nil {
		return fmt.Errorf("%s.driver: %v: not supported by docker fleet: %s (a bridge network is made an overlay)", at, d, overlayOnly)
	}
	if a, ok := def["attachable"]; ok && a != true {
		return fmt.Errorf("%s.attachable: %v: not supported by docker fleet: fleet containers are plain containers, which join only attachable networks", at, a)
	}
	ipam, _ := def["ipam"].(map[string]any)
	if err := onlyWith(at+".ipam.", "networks.ipam.", ipam, composeIPAM); err != nil {
		return err
	}
	pools, _ := ipam["config"].([]any)
	for i, p := range pools {
		pool, _ := p.(map[string]any)
		if err := only(fmt.Sprintf("%s.ipam.config[%d].", at, i), "", pool, composeIPAMPool); err != nil {
			return err
		}
	}
	return nil
}

// checkServiceAttachments refuses keys of a service's networks, secrets
// and configs (at is "services.NAME.") that the fleet would drop.
func checkServiceAttachments(at string, svc map[string]any) error {
	nets, _ := svc["networks"].(map[string]any)
	for _, n := range slices.Sorted(maps.Keys(nets)) {
		cfg, _ := nets[n].(map[string]any)
		if err := onlyWith(at+"networks."+n+".", "service.", cfg, composeServiceNetwork); err != nil {
			return err
		}
	}
	for _, key := range []string{"secrets", "configs"} {
		refs, _ := svc[key].([]any)
		for i, r := range refs {
			if ref, ok := r.(map[string]any); ok {
				if err := only(fmt.Sprintf("%s%s[%d].", at, key, i), "", ref, composeFileReference); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// onlyWith is only with the reasons of attachmentWhy, found under kind
// ("secrets.", "service.", …).
func onlyWith(at, kind string, m map[string]any, allowed map[string]bool) error {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if why, ok := attachmentWhy[kind+k]; ok && !allowed[k] {
			return fmt.Errorf("%s%s: not supported by docker fleet: %s", at, k, why)
		}
	}
	return only(at, "", m, allowed)
}

// attach gives s the networks, secrets and configs of its Compose service
// c, and adds to r the networks to make and the contents to send. Its
// errors name their place in the file whole.
func (r *Result) attach(p *types.Project, c types.ServiceConfig, s *spec.Service) error {
	at := "services." + c.Name
	nets, err := r.networksOf(p, c)
	if err != nil {
		return err
	}
	s.Networks = nets
	if s.Secrets, err = r.filesOf(p, at, spec.SecretFile, refs(c.Secrets)); err != nil {
		return err
	}
	if s.Configs, err = r.filesOf(p, at, spec.ConfigFile, refs(c.Configs)); err != nil {
		return err
	}
	var files []api.File
	for _, f := range s.Files() {
		files = append(files, api.File{ServiceFile: f, Content: r.content(f.Kind, f.Name)})
	}
	if err := api.CheckFiles(files); err != nil {
		return fmt.Errorf("%s: %w", at, err)
	}
	return nil
}

// networksOf are a service's networks besides Compose's default one (the
// fleet network), each network it names added to r.NetworkDefs once.
func (r *Result) networksOf(p *types.Project, c types.ServiceConfig) ([]spec.NetworkAttachment, error) {
	var out []spec.NetworkAttachment
	for _, key := range slices.Sorted(maps.Keys(c.Networks)) {
		cfg := c.Networks[key]
		at := "services." + c.Name + ".networks." + key
		if key == "default" {
			if cfg != nil && len(cfg.Aliases) > 0 {
				return nil, fmt.Errorf("%s.aliases: not supported by docker fleet: the default network is the fleet network, where a replica answers to SERVICE, SERVICE.N and its container_name", at)
			}
			continue
		}
		def, ok := p.Networks[key]
		if !ok {
			return nil, fmt.Errorf("%s: no network %s among the file's networks", at, key)
		}
		n, err := network(key, def)
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(r.NetworkDefs, func(d spec.Network) bool { return d.Key == key }) {
			r.NetworkDefs = append(r.NetworkDefs, n)
			if note := bridgeNotice(key, def); note != "" {
				r.Notices = append(r.Notices, note)
			}
		}
		a := spec.NetworkAttachment{Name: n.Name}
		if cfg != nil {
			a.Aliases = cfg.Aliases
		}
		out = append(out, a)
	}
	return out, nil
}

// network is a top-level network as create makes or finds it.
func network(key string, def types.NetworkConfig) (spec.Network, error) {
	n := spec.Network{Key: key, Name: def.Name, External: bool(def.External), Internal: def.Internal,
		Labels: def.Labels, DriverOpts: def.DriverOpts}
	if dropped := bridgeOpts(def.DriverOpts); len(dropped) > 0 {
		n.DriverOpts = maps.Clone(def.DriverOpts)
		for _, k := range dropped {
			delete(n.DriverOpts, k)
		}
		if len(n.DriverOpts) == 0 {
			n.DriverOpts = nil
		}
	}
	for i, pool := range def.Ipam.Config {
		at := fmt.Sprintf("networks.%s.ipam.config[%d]", key, i)
		var ip spec.IPAMPool
		var err error
		if ip.Subnet, err = netip.ParsePrefix(pool.Subnet); err != nil {
			return n, fmt.Errorf("%s.subnet: %q is not a subnet such as 10.20.0.0/24", at, pool.Subnet)
		}
		if pool.IPRange != "" {
			if ip.IPRange, err = netip.ParsePrefix(pool.IPRange); err != nil || !ip.Subnet.Contains(ip.IPRange.Addr()) {
				return n, fmt.Errorf("%s.ip_range: %q is not a range within %s", at, pool.IPRange, ip.Subnet)
			}
		}
		if pool.Gateway != "" {
			if ip.Gateway, err = netip.ParseAddr(pool.Gateway); err != nil || !ip.Subnet.Contains(ip.Gateway) {
				return n, fmt.Errorf("%s.gateway: %q is not an address within %s", at, pool.Gateway, ip.Subnet)
			}
		}
		n.IPAM = append(n.IPAM, ip)
	}
	if n.External && len(n.IPAM) > 0 {
		return n, fmt.Errorf("networks.%s.ipam: an external network is made outside the file", key)
	}
	return n, nil
}

// fileRef is a service's reference to a secret or config.
type fileRef = types.FileReferenceConfig

// refs are a service's references to its secrets or configs, as one type.
func refs[T types.ServiceSecretConfig | types.ServiceConfigObjConfig](in []T) []fileRef {
	out := make([]fileRef, len(in))
	for i, v := range in {
		out[i] = fileRef(v)
	}
	return out
}

// defaultFileMode is Compose's for secrets and configs.
const defaultFileMode = 0o444

// filesOf maps a service's references to secrets or configs (kind), each
// one's content read once into r.Files.
func (r *Result) filesOf(p *types.Project, at, kind string, list []fileRef) ([]spec.FileMount, error) {
	var out []spec.FileMount
	for i, ref := range list {
		where := fmt.Sprintf("%s.%ss[%d]", at, kind, i)
		if err := r.read(p, kind, ref.Source); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		f := spec.FileMount{Name: ref.Source, Target: ref.Target, UID: ref.UID, GID: ref.GID, Mode: defaultFileMode}
		switch {
		case f.Target == "" && kind == spec.SecretFile:
			f.Target = path.Join(spec.SecretsDir, ref.Source)
		case f.Target == "":
			f.Target = "/" + ref.Source
		case kind == spec.SecretFile && !path.IsAbs(f.Target):
			f.Target = spec.SecretsDir + "/" + f.Target // not cleaned: Check refuses "../"
		}
		if ref.Mode != nil {
			if *ref.Mode < 0 || *ref.Mode > 0o777 {
				return nil, fmt.Errorf("%s.mode: %o: permissions only (at most 0777)", where, *ref.Mode)
			}
			f.Mode = uint32(*ref.Mode)
		}
		if err := f.Check(kind); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// read reads the content of the file's secret or config called name, once.
func (r *Result) read(p *types.Project, kind, name string) error {
	if r.content(kind, name) != nil {
		return nil
	}
	def, ok := definition(p, kind, name)
	if !ok {
		return fmt.Errorf("no %s %s among the file's %ss", kind, name, kind)
	}
	at := kind + "s." + name
	var content []byte
	switch {
	case def.File != "":
		b, err := readBounded(def.File)
		if err != nil {
			return fmt.Errorf("%s.file: %w", at, err)
		}
		content = b
	case def.Environment != "":
		v, ok := p.Environment[def.Environment]
		if !ok {
			return fmt.Errorf("%s.environment: %s is not set", at, def.Environment)
		}
		content = []byte(v)
	case kind == spec.ConfigFile:
		content = []byte(def.Content)
	default:
		return fmt.Errorf("%s: give its file: or environment:", at) //nolint:staticcheck // ST1005: ends with the Compose keys to set
	}
	r.Files = append(r.Files, api.FileContent{Kind: kind, Name: name, Content: content})
	return nil
}

// definition is the file's top-level secret or config called name.
func definition(p *types.Project, kind, name string) (types.FileObjectConfig, bool) {
	if kind == spec.SecretFile {
		d, ok := p.Secrets[name]
		return types.FileObjectConfig(d), ok
	}
	d, ok := p.Configs[name]
	return types.FileObjectConfig(d), ok
}

// content is what r holds of a secret or config (nil: nothing yet).
func (r *Result) content(kind, name string) []byte {
	for _, f := range r.Files {
		if f.Kind == kind && f.Name == name {
			if f.Content == nil {
				return []byte{}
			}
			return f.Content
		}
	}
	return nil
}

// readBounded reads a secret's or config's file, no larger than a
// replica's files may be together.
func readBounded(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, spec.MaxFilesBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > spec.MaxFilesBytes {
		return nil, fmt.Errorf("larger than the %dKiB a replica's secrets and configs may hold together", spec.MaxFilesBytes>>10)
	}
	return b, nil
}

// bridgeOptPrefix starts the options of the bridge driver, which mean
// nothing to an overlay network.
const bridgeOptPrefix = "com.docker.network.bridge."

// bridgeOpts are the driver_opts meant for a bridge, sorted.
func bridgeOpts(opts map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(opts)) {
		if strings.HasPrefix(k, bridgeOptPrefix) {
			out = append(out, k)
		}
	}
	return out
}

// bridgeNotice is the one line create prints for a network of the file
// asked as a bridge, or whose bridge driver_opts are dropped; "" if none.
func bridgeNotice(key string, def types.NetworkConfig) string {
	if def.External {
		return ""
	}
	dropped := bridgeOpts(def.DriverOpts)
	var note string
	switch {
	case def.Driver == "bridge":
		note = fmt.Sprintf("networks.%s: driver bridge made an attachable overlay network, so its services reach each other across the fleet's nodes", key)
		if len(dropped) > 0 {
			note += "; driver_opts " + strings.Join(dropped, ", ") + " dropped"
		}
	case len(dropped) > 0:
		note = fmt.Sprintf("networks.%s.driver_opts: %s dropped: the network is an overlay, not a bridge", key, strings.Join(dropped, ", "))
	}
	return note
}
