package spec

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func svc(name string, deps ...string) Service {
	s := Service{Name: name, Image: "img", Replicas: 1}
	for _, d := range deps {
		if s.DependsOn == nil {
			s.DependsOn = map[string]string{}
		}
		s.DependsOn[d] = DependsStarted
	}
	return s
}

func TestOrder(t *testing.T) {
	waves, err := Order([]Service{svc("web", "api", "cache"), svc("api", "db"), svc("db"), svc("cache"), svc("lone")})
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(waves, [][]string{{"cache", "db", "lone"}, {"api"}, {"web"}}))

	// A dependency made elsewhere (not among the services) does not hold
	// anything back.
	waves, err = Order([]Service{svc("web", "db")})
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(waves, [][]string{{"web"}}))

	_, err = Order([]Service{svc("a", "b"), svc("b", "c"), svc("c", "b"), svc("d")})
	assert.Check(t, is.Error(err, "depends_on makes a cycle: b → c → b"))
	// A service waiting on a cycle is not part of it.
	_, err = Order([]Service{svc("a", "b"), svc("b", "c"), svc("c", "d"), svc("d", "b")})
	assert.Check(t, is.Error(err, "depends_on makes a cycle: b → c → d → b"))
}

func TestValidateProjectFields(t *testing.T) {
	ok := Service{Name: "web", Image: "img", Replicas: 1, Project: "shop-2_x", Aliases: []string{"shop.web"},
		DependsOn: map[string]string{"db": DependsHealthy, "cache": DependsStarted, "migrate": DependsCompleted}}
	assert.NilError(t, ok.Validate())
	for want, mutate := range map[string]func(*Service){
		`project: "Shop" is not a project name`:                    func(s *Service) { s.Project = "Shop" },
		`project: "-shop" is not a project name`:                   func(s *Service) { s.Project = "-shop" },
		`aliases: "-x" is not a container name`:                    func(s *Service) { s.Aliases = []string{"-x"} },
		"aliases: only for a service of one replica, and it has 2": func(s *Service) { s.Replicas = 2 },
		`depends_on: db: condition "service_stopped": use service_started, service_healthy or service_completed_successfully`: func(s *Service) {
			s.DependsOn = map[string]string{"db": "service_stopped"}
		},
		"depends_on: web depends on itself":       func(s *Service) { s.DependsOn = map[string]string{"web": DependsStarted} },
		`depends_on: "a.b" is not a service name`: func(s *Service) { s.DependsOn = map[string]string{"a.b": DependsStarted} },
	} {
		s := ok
		mutate(&s)
		assert.Check(t, is.ErrorContains(s.Validate(), want), want)
	}
}
