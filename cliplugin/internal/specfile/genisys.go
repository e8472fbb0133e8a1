package specfile

import (
	"encoding/json"
	"strings"

	"github.com/docker-fleet/fleet/shared/spec"
)

// genisysService is a Genisys connector service definition.
type genisysService struct {
	Name        string          `json:"name"`
	Image       string          `json:"image"`
	Command     json.RawMessage `json:"command"`
	Environment json.RawMessage `json:"environment"`
	Ports       []string        `json:"ports"`
}

func parseGenisys(data []byte) (*Result, error) {
	var g genisysService
	if err := strictUnmarshal(data, &g); err != nil {
		return nil, err
	}
	if err := requireName("name", g.Name); err != nil {
		return nil, err
	}
	if g.Image == "" {
		return nil, errNoImage
	}
	s := spec.Service{Name: g.Name, Image: g.Image, Replicas: 1}
	var err error
	if s.Command, err = command("command", g.Command); err != nil {
		return nil, err
	}
	if s.Env, err = environment("environment", g.Environment); err != nil {
		return nil, err
	}
	// Genisys exposes each port on the Docker host under the same number.
	for _, p := range g.Ports {
		if !strings.Contains(p, ":") {
			num, _, _ := strings.Cut(p, "/")
			p = num + ":" + p
		}
		port, err := spec.ParsePort(p)
		if err != nil {
			return nil, err
		}
		s.Ports = append(s.Ports, port)
	}
	return &Result{Format: Genisys, Services: []spec.Service{s}}, nil
}
