package specfile

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
)

// parseShop reads doc as the Compose file of project "shop", in a folder
// holding files (name → content), with env as the environment.
func parseShop(t *testing.T, doc string, files map[string]string, env map[string]string) (*Result, error) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		assert.NilError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
	}
	return Parse("compose.yaml", []byte("name: shop\n"+doc), dir, env)
}

const networksDoc = `
services:
  web:
    image: fleet-workload:latest
    networks:
      front:
        aliases: [www]
      back:
  api:
    image: fleet-workload:latest
    networks: [back, default]
  lone:
    image: fleet-workload:latest
networks:
  front:
    driver: overlay
    ipam:
      config:
        - subnet: 10.217.1.0/24
          gateway: 10.217.1.1
  back:
    labels: {team: shop}
  shared:
    external: true
    name: corp-net
`

// TestComposeNetworks: each network a service names becomes one to make,
// under Compose's name for it; Compose's default network is the fleet's,
// so a service that names none joins only that one.
func TestComposeNetworks(t *testing.T) {
	r, err := parseShop(t, networksDoc, nil, nil)
	assert.NilError(t, err)
	byName := map[string]spec.Service{}
	for _, s := range r.Services {
		byName[s.Name] = s
	}
	assert.Check(t, is.DeepEqual(byName["web"].Networks, []spec.NetworkAttachment{
		{Name: "shop_back"}, {Name: "shop_front", Aliases: []string{"www"}},
	}))
	assert.Check(t, is.DeepEqual(byName["api"].Networks, []spec.NetworkAttachment{{Name: "shop_back"}}), "default is the fleet network")
	assert.Check(t, is.Len(byName["lone"].Networks, 0))
	assert.Assert(t, is.Len(r.NetworkDefs, 2), "unused networks are not made")
	front := r.NetworkDefs[1]
	assert.Check(t, is.DeepEqual(front.IPAM, []spec.IPAMPool{{Subnet: netip.MustParsePrefix("10.217.1.0/24"), Gateway: netip.MustParseAddr("10.217.1.1")}},
		cmp.Comparer(func(a, b spec.IPAMPool) bool { return a == b })))
	front.IPAM = nil
	assert.Check(t, is.DeepEqual([]spec.Network{r.NetworkDefs[0], front}, []spec.Network{
		{Key: "back", Name: "shop_back", Labels: map[string]string{"team": "shop"}},
		{Key: "front", Name: "shop_front"},
	}))
	assert.Check(t, is.Len(r.Files, 0))
}

// TestComposeExternalNetwork: an external network keeps its own name.
func TestComposeExternalNetwork(t *testing.T) {
	r, err := parseShop(t, `
services:
  web:
    image: x
    networks: [shared]
networks:
  shared:
    external: true
    name: corp-net
`, nil, nil)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(r.Services[0].Networks, []spec.NetworkAttachment{{Name: "corp-net"}}))
	assert.Check(t, is.DeepEqual(r.NetworkDefs, []spec.Network{{Key: "shared", Name: "corp-net", External: true}}))
}

// TestComposeNetworksRefused: what the fleet cannot make is refused by
// its key, with the reason.
func TestComposeNetworksRefused(t *testing.T) {
	svc := "services:\n  web:\n    image: x\n    networks: [n]\n"
	for doc, want := range map[string]string{
		svc + "networks:\n  n: {driver: host}\n":                                                                  "networks.n.driver: host: not supported by docker fleet: a fleet's replicas run on several hosts, and only an overlay network spans them (a bridge network is made an overlay)",
		svc + "networks:\n  n: {driver: ipvlan}\n":                                                                "networks.n.driver: ipvlan: not supported by docker fleet",
		svc + "networks:\n  n: {driver: none}\n":                                                                  "networks.n.driver: none: not supported by docker fleet",
		svc + "networks:\n  n: {driver: macvlan}\n":                                                               "networks.n.driver: macvlan: not supported by docker fleet",
		svc + "networks:\n  n: {attachable: false}\n":                                                             "networks.n.attachable: false: not supported by docker fleet: fleet containers are plain containers",
		svc + "networks:\n  n: {enable_ipv6: true}\n":                                                             "networks.n.enable_ipv6: not supported by docker fleet: the fleet's networks are IPv4",
		svc + "networks:\n  n: {ipam: {driver: dhcp}}\n":                                                          "networks.n.ipam.driver: not supported by docker fleet",
		svc + "networks:\n  n: {ipam: {config: [{subnet: 10.0.0.0/33}]}}\n":                                       "networks.n.ipam.config[0].subnet: \"10.0.0.0/33\" is not a subnet",
		svc + "networks:\n  n: {ipam: {config: [{subnet: 10.9.0.0/24, aux_addresses: {a: 10.9.0.9}}]}}\n":         "networks.n.ipam.config[0].aux_addresses: not supported by docker fleet",
		svc + "networks:\n  n: {ipam: {config: [{subnet: 10.9.0.0/24, gateway: 10.8.0.1}]}}\n":                    "networks.n.ipam.config[0].gateway: \"10.8.0.1\" is not an address within 10.9.0.0/24",
		svc + "networks:\n  default: {driver: overlay}\n  n: {}\n":                                                "networks.default: not supported by docker fleet: Compose's default network is the fleet network",
		"services:\n  web:\n    image: x\n    networks: [nowhere]\n":                                              "services.web.networks.nowhere: no network nowhere among the file's networks",
		"services:\n  web:\n    image: x\n    networks:\n      n: {ipv4_address: 10.9.0.5}\nnetworks:\n  n: {}\n": "services.web.networks.n.ipv4_address: not supported by docker fleet: each replica has an address of its own",
		"services:\n  web:\n    image: x\n    networks:\n      default: {aliases: [w]}\n":                         "services.web.networks.default.aliases: not supported by docker fleet: the default network is the fleet network",
	} {
		_, err := parseShop(t, doc, nil, nil)
		assert.Check(t, is.ErrorContains(err, want), doc)
	}
}

const filesDoc = `
services:
  web:
    image: x
    secrets:
      - db_password
      - source: api_token
        target: token
        mode: 0400
        uid: "1000"
    configs:
      - app
      - source: nginx
        target: /etc/nginx/nginx.conf
  worker:
    image: x
    secrets: [db_password]
secrets:
  db_password:
    file: ./db_password.txt
  api_token:
    environment: API_TOKEN
configs:
  app:
    content: "mode=${MODE}"
  nginx:
    file: ./nginx.conf
`

// TestComposeSecretsAndConfigs: a service's secrets and configs keep only
// their names and targets in the definition, with Compose's defaults; their
// contents are read here once each, from a file, the environment or the
// file's own content.
func TestComposeSecretsAndConfigs(t *testing.T) {
	r, err := parseShop(t, filesDoc, map[string]string{"db_password.txt": "hunter2\n", "nginx.conf": "events {}\n"},
		map[string]string{"API_TOKEN": "t0k3n", "MODE": "prod"})
	assert.NilError(t, err)
	web := r.Services[0]
	assert.Check(t, is.DeepEqual(web.Secrets, []spec.FileMount{
		{Name: "db_password", Target: "/run/secrets/db_password", Mode: 0o444},
		{Name: "api_token", Target: "/run/secrets/token", UID: "1000", Mode: 0o400},
	}))
	assert.Check(t, is.DeepEqual(web.Configs, []spec.FileMount{
		{Name: "app", Target: "/app", Mode: 0o444},
		{Name: "nginx", Target: "/etc/nginx/nginx.conf", Mode: 0o444},
	}))
	assert.Check(t, is.DeepEqual(r.Services[1].Secrets, []spec.FileMount{{Name: "db_password", Target: "/run/secrets/db_password", Mode: 0o444}}))
	assert.Check(t, is.DeepEqual(r.Files, []api.FileContent{
		{Kind: spec.SecretFile, Name: "db_password", Content: []byte("hunter2\n")},
		{Kind: spec.SecretFile, Name: "api_token", Content: []byte("t0k3n")},
		{Kind: spec.ConfigFile, Name: "app", Content: []byte("mode=prod")},
		{Kind: spec.ConfigFile, Name: "nginx", Content: []byte("events {}\n")},
	}))
	for _, s := range r.Services {
		assert.Check(t, s.Validate())
		assert.Check(t, !containsContent(s, "hunter2"), "the content is not in the definition")
	}
}

func containsContent(s spec.Service, content string) bool {
	for _, v := range s.Env {
		if v == content {
			return true
		}
	}
	for _, v := range s.Labels {
		if v == content {
			return true
		}
	}
	return false
}

// TestComposeSecretsRefused: secrets and configs the fleet cannot give are
// refused by their key, with the reason.
func TestComposeSecretsRefused(t *testing.T) {
	uses := func(kind string) string { return "services:\n  web:\n    image: x\n    " + kind + ": [s]\n" }
	files := map[string]string{"s.txt": "x", "big": string(make([]byte, spec.MaxFilesBytes+1))}
	for doc, want := range map[string]string{
		uses("secrets") + "secrets:\n  s: {external: true}\n":                         "secrets.s.external: not supported by docker fleet: it names the swarm's own store",
		uses("secrets") + "secrets:\n  s: {file: ./s.txt, driver: vault}\n":           "secrets.s.driver: not supported by docker fleet",
		uses("secrets") + "secrets:\n  s: {file: ./s.txt, template_driver: golang}\n": "secrets.s.template_driver: not supported by docker fleet",
		uses("configs") + "configs:\n  s: {external: true}\n":                         "configs.s.external: not supported by docker fleet",
		uses("secrets") + "secrets:\n  s: {environment: NOT_SET}\n":                   "services.web.secrets[0]: secrets.s.environment: NOT_SET is not set",
		uses("secrets") + "secrets:\n  s: {file: ./missing}\n":                        "services.web.secrets[0]: secrets.s.file: open",
		uses("secrets") + "secrets:\n  s: {file: ./big}\n":                            "larger than the 128KiB",
		uses("secrets"): "services.web.secrets[0]: no secret s among the file's secrets",
		"services:\n  web:\n    image: x\n    secrets: [{source: s, target: /etc/shadow}]\nsecrets:\n  s: {file: ./s.txt}\n":              `services.web.secrets[0]: secret "s": target "/etc/shadow": secrets are mounted under /run/secrets`,
		"services:\n  web:\n    image: x\n    secrets: [{source: s, target: ../../etc/shadow}]\nsecrets:\n  s: {file: ./s.txt}\n":         "is not an absolute, clean path",
		"services:\n  web:\n    image: x\n    configs: [{source: s, target: etc/app}]\nconfigs:\n  s: {content: x}\n":                     "is not an absolute, clean path",
		"services:\n  web:\n    image: x\n    secrets: [{source: s, mode: 04755}]\nsecrets:\n  s: {file: ./s.txt}\n":                      "services.web.secrets[0].mode: 4755: permissions only",
		"services:\n  web:\n    image: x\n    secrets: [{source: s, target: /run/secrets/x, extra: 1}]\nsecrets:\n  s: {file: ./s.txt}\n": "services.web.secrets[0].extra: not supported by docker fleet",
		"services:\n  web:\n    image: x\n    volumes: [data:/run/secrets/s]\n    secrets: [s]\nsecrets:\n  s: {file: ./s.txt}\n":         "services.web.secrets: secret s: /run/secrets/s is a volume's target too",
	} {
		_, err := parseShop(t, doc, files, nil)
		assert.Check(t, is.ErrorContains(err, want), doc)
	}
}

// TestComposeBridgeNetwork: a bridge network, Compose's default for one
// host, is made an overlay as any other, its bridge options dropped, and
// create says so once per network; other options stay.
func TestComposeBridgeNetwork(t *testing.T) {
	r, err := parseShop(t, `
services:
  web:
    image: x
    networks: [back, front]
  api:
    image: x
    networks: [back, plain]
networks:
  back:
    driver: bridge
    driver_opts:
      com.docker.network.bridge.name: br-shop
      com.docker.network.bridge.enable_icc: "true"
      com.docker.network.driver.mtu: "1400"
  front:
    driver_opts:
      com.docker.network.bridge.host_binding_ipv4: 127.0.0.1
  plain:
    driver: overlay
    driver_opts: {encrypted: ""}
  unused:
    driver: bridge
`, nil, nil)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(r.NetworkDefs, []spec.Network{
		{Key: "back", Name: "shop_back", DriverOpts: map[string]string{"com.docker.network.driver.mtu": "1400"}},
		{Key: "plain", Name: "shop_plain", DriverOpts: map[string]string{"encrypted": ""}},
		{Key: "front", Name: "shop_front"},
	}))
	assert.Check(t, is.DeepEqual(r.Notices, []string{
		"networks.back: driver bridge made an attachable overlay network, so its services reach each other across the fleet's nodes; driver_opts com.docker.network.bridge.enable_icc, com.docker.network.bridge.name dropped",
		"networks.front.driver_opts: com.docker.network.bridge.host_binding_ipv4 dropped: the network is an overlay, not a bridge",
	}), "one line per network used, none for plain or unused")
}
