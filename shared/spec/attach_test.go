package spec

import (
	"fmt"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// TestAttachmentsValidate: networks, secrets and configs are checked with
// the rest of a definition, each error naming its key.
func TestAttachmentsValidate(t *testing.T) {
	good := func() Service {
		return Service{Name: "web", Image: "x", Replicas: 1,
			Volumes: []Volume{{Source: "data", Target: "/data"}},
			Attachments: Attachments{
				Networks: []NetworkAttachment{{Name: "shop_back", Aliases: []string{"www"}}},
				Secrets:  []FileMount{{Name: "pw", Target: "/run/secrets/pw", Mode: 0o400, UID: "1000"}},
				Configs:  []FileMount{{Name: "app.conf", Target: "/etc/app.conf", Mode: 0o444}},
			}}
	}
	s := good()
	assert.NilError(t, s.Validate())

	for want, mutate := range map[string]func(*Service){
		`networks: "a b" is not a network name`:                       func(s *Service) { s.Networks[0].Name = "a b" },
		"networks: shop_back is named twice":                          func(s *Service) { s.Networks = append(s.Networks, s.Networks[0]) },
		`networks: shop_back: alias "-x" is not a name`:               func(s *Service) { s.Networks[0].Aliases = []string{"-x"} },
		`secrets: "../x" is not a secret name`:                        func(s *Service) { s.Secrets[0].Name = "../x" },
		`secrets: secret "pw": target "/etc/pw": secrets are mounted`: func(s *Service) { s.Secrets[0].Target = "/etc/pw" },
		`configs: config "app.conf": target "/" is not an absolute`:   func(s *Service) { s.Configs[0].Target = "/" },
		"configs: config app.conf: /data is a volume's target too":    func(s *Service) { s.Configs[0].Target = "/data" },
		"configs: config app.conf: /run/secrets/pw is secret pw's":    func(s *Service) { s.Configs[0].Target = "/run/secrets/pw" },
		`secrets: secret "pw": uid "root", gid "": numbers`:           func(s *Service) { s.Secrets[0].UID = "root" },
		"secrets: 34 secrets and configs: at most 32": func(s *Service) {
			for i := range MaxFiles {
				s.Secrets = append(s.Secrets, FileMount{Name: fmt.Sprintf("s%d", i), Target: fmt.Sprintf("/run/secrets/s%d", i)})
			}
		},
	} {
		s := good()
		mutate(&s)
		assert.Check(t, is.ErrorContains(s.Validate(), want))
	}
}
