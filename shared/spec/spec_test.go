package spec

import (
	"errors"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestValidate(t *testing.T) {
	ok := Service{Name: "web", Image: "img", Replicas: 3, Cores: 1, Memory: 64 << 20}
	assert.NilError(t, ok.Validate())

	for want, mutate := range map[string]func(*Service){
		"name: ":                  func(s *Service) { s.Name = "web.1" },
		"name: \"web-\"":          func(s *Service) { s.Name = "web-" },
		"at most 38 characters":   func(s *Service) { s.Name = strings.Repeat("a", 39) },
		"image: missing":          func(s *Service) { s.Image = "" },
		"replicas: -1":            func(s *Service) { s.Replicas = -1 },
		"cpus: give either":       func(s *Service) { s.Cpuset = "0" },
		"cpuset-cpus: cpuset":     func(s *Service) { s.Cores = 0; s.Cpuset = "x" },
		"memory: 1KiB is below":   func(s *Service) { s.Memory = 1024 },
		"memory-swap: must be":    func(s *Service) { s.MemorySwap = 1 << 20 },
		"strategy: \"pack\"":      func(s *Service) { s.Strategy = "pack" },
		"volumes: \"a b:/x\"":     func(s *Service) { s.Volumes = []Volume{{Source: "a b", Target: "/x"}} },
		"environment: \"=x\" has": func(s *Service) { s.Env = []string{"=x"} },
	} {
		s := ok
		mutate(&s)
		assert.Check(t, is.ErrorContains(s.Validate(), want))
	}
	unlimited := ok
	unlimited.MemorySwap = -1
	assert.NilError(t, unlimited.Validate())
}

func TestParseMemory(t *testing.T) {
	n, err := ParseMemory("memory", "64m")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(n, int64(64<<20)))
	n, err = ParseMemory("memory", "1g")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(n, int64(1<<30)))
	_, err = ParseMemory("memory", "12q")
	assert.Check(t, is.ErrorContains(err, `memory: "12q" is not a size`))
	_, err = ParseMemory("memory", "-1")
	assert.Check(t, err != nil)
	n, err = ParseMemorySwap("memory-swap", "-1")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(n, int64(-1)))
}

func TestParsePort(t *testing.T) {
	for in, want := range map[string]Port{
		"8080":        {Container: 8080, Protocol: "tcp"},
		"80:8080":     {Host: 80, Container: 8080, Protocol: "tcp"},
		"53:5353/udp": {Host: 53, Container: 5353, Protocol: "udp"},
	} {
		p, err := ParsePort(in)
		assert.NilError(t, err)
		assert.Check(t, is.DeepEqual(p, want))
	}
	for _, in := range []string{"", "x", "0", "70000", "1:2/sctp", "a:80"} {
		_, err := ParsePort(in)
		assert.Check(t, is.ErrorContains(err, "ports:"), in)
	}
}

func TestParseVolume(t *testing.T) {
	v, err := ParseVolume("data:/var/lib/data:ro")
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(v, Volume{Source: "data", Target: "/var/lib/data", ReadOnly: true}))
	_, err = ParseVolume("/srv:/srv")
	assert.NilError(t, err)
	for _, in := range []string{"data", "data:rel", "../x:/y", "a:/b:c", "a:/b:ro:x"} {
		_, err := ParseVolume(in)
		assert.Check(t, is.ErrorContains(err, "volumes:"), in)
	}
}

func FuzzParseMemory(f *testing.F) {
	for _, s := range []string{"64m", "1g", "12q", "-1", "1.5g", "9999999999999999999g"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		n, err := ParseMemory("memory", in)
		if err == nil && n <= 0 {
			t.Fatalf("%q parsed to %d", in, n)
		}
	})
}

func FuzzParsePortVolume(f *testing.F) {
	for _, s := range []string{"80:8080/udp", "data:/x:ro", "::", "/a:/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if p, err := ParsePort(in); err == nil && p.Container == 0 {
			t.Fatalf("%q: port 0 accepted", in)
		}
		if v, err := ParseVolume(in); err == nil && v.Target[0] != '/' {
			t.Fatalf("%q: relative target accepted", in)
		}
	})
}

// TestHostNetwork: network_mode: host refuses, each by its key, what a
// replica on its node's network cannot have; several replicas are fine.
func TestHostNetwork(t *testing.T) {
	ok := Service{Name: "web", Image: "img", Replicas: 3, Options: Options{NetworkMode: HostNetwork, Expose: []string{"80"}}}
	assert.NilError(t, ok.Validate())
	assert.Check(t, is.DeepEqual(ok.Keys(), []string{"expose", "network_mode"}))

	for want, mutate := range map[string]func(*Service){
		`network_mode: "bridge": only host is taken`: func(s *Service) { s.NetworkMode = "bridge" },
		"ports: with network_mode: host the container listens on its node's ports directly": func(s *Service) {
			s.Ports = []Port{{Host: 8080, Container: 80, Protocol: "tcp"}}
		},
		"networks: with network_mode: host":         func(s *Service) { s.Networks = []NetworkAttachment{{Name: "back"}} },
		"hostname: with network_mode: host":         func(s *Service) { s.Hostname = "web" },
		"checkpoint-every: with network_mode: host": func(s *Service) { s.CheckpointEvery = Duration(30 * time.Second) },
		"sysctls: net.ipv4.ip_forward: with network_mode: host": func(s *Service) {
			s.Sysctls = map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": "1"}
		},
	} {
		s := ok
		mutate(&s)
		assert.Check(t, is.ErrorContains(s.Validate(), want))
	}
	// The fleet network takes all of those.
	fleet := ok
	fleet.NetworkMode, fleet.Hostname, fleet.CheckpointEvery = "", "web", Duration(30*time.Second)
	fleet.Ports = []Port{{Host: 8080, Container: 80, Protocol: "tcp"}}
	assert.NilError(t, fleet.Validate())
}

// TestUnconfined: the security options that turn a host's policy off are
// taken in docker's form; a profile or label is not.
func TestUnconfined(t *testing.T) {
	for in, want := range map[string]string{"seccomp:unconfined": "seccomp=unconfined", "seccomp=unconfined": "seccomp=unconfined",
		"apparmor:unconfined": "apparmor=unconfined", "label:disable": "label=disable", "label=disable": "label=disable"} {
		got, ok := UnconfinedOpt(in)
		assert.Check(t, ok && got == want, in)
	}
	for _, in := range []string{"seccomp=/etc/p.json", "apparmor=docker-default", "label=type:svirt_t", "no-new-privileges", "seccomp"} {
		_, ok := UnconfinedOpt(in)
		assert.Check(t, !ok, in)
	}
	s := Service{Name: "web", Image: "img", Replicas: 1, Options: Options{Unconfined: []string{"seccomp=unconfined", "label=disable"}}}
	assert.NilError(t, s.Validate())
	assert.Check(t, is.DeepEqual(s.Keys(), []string{"security_opt"}))
	s.Unconfined = []string{"apparmor=docker-default"}
	assert.Check(t, is.ErrorContains(s.Validate(), `security_opt: "apparmor=docker-default": only no-new-privileges, apparmor=unconfined, label=disable, seccomp=unconfined are taken: a seccomp or AppArmor profile`))
	s.Unconfined = []string{"seccomp:unconfined"}
	assert.Check(t, is.ErrorContains(s.Validate(), "security_opt: \"seccomp:unconfined\""), "stored in docker's form only")
}

// Every fault Validate finds is a FieldError: callers name the field their
// way from Field, and its text is "field: message".
func TestValidateFieldErrors(t *testing.T) {
	s := Service{Name: "web", Image: "", Replicas: 2, Memory: 1024, Aliases: []string{"db"},
		Constraints: []string{"node.labels.disk=ssd"}, UpdateConfig: &UpdateConfig{Order: "x"},
		DependsOn: map[string]string{"web": DependsStarted}}
	errs := Errors(s.Validate())
	var fields []string
	for _, err := range errs {
		var fe *FieldError
		assert.Assert(t, errors.As(err, &fe), "%v", err)
		assert.Check(t, is.Equal(err.Error(), fe.Field+": "+fe.Err.Error()))
		fields = append(fields, fe.Field)
	}
	assert.Check(t, is.DeepEqual(fields, []string{"image", "memory", ConstraintsField, "depends_on", "aliases", "update_config.order"}))
	assert.Check(t, is.Len(Errors(nil), 0))

	_, err := ParsePort("80:x")
	var fe *FieldError
	assert.Assert(t, errors.As(err, &fe))
	assert.Check(t, is.Equal(fe.Field, "ports"))
	assert.Check(t, is.Equal(fe.Err.Error(), `"80:x": "x" is not a port number`))
}
