package agent

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"

	"github.com/docker-fleet/fleet/daemonplugin/guard"
	"github.com/docker-fleet/fleet/daemonplugin/images"
	"github.com/docker-fleet/fleet/daemonplugin/journal"
	"github.com/docker-fleet/fleet/daemonplugin/keyring"
	"github.com/docker-fleet/fleet/daemonplugin/migrate"
	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/cpuset"
	"github.com/docker-fleet/fleet/shared/pki"
)

// deadEngine answers every engine call with an error: the fuzzed requests
// go as far as the agent's own checks let them, and no further.
type deadEngine struct{}

func (deadEngine) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no engine in this test")
}

// fuzzAgent is an agent of node h1 over a dead engine, and the verified
// certificates of an operator and of node h2 to call it with.
func fuzzAgent(t testing.TB) (http.Handler, map[pki.Role]*x509.Certificate) {
	ca, err := pki.NewCA("fleet")
	assert.NilError(t, err)
	keys, err := keyring.Open(t.TempDir(), "h1", ca.CertPEM, []byte("token"))
	assert.NilError(t, err)
	engine, err := client.New(client.WithHost("tcp://127.0.0.1:1"), client.WithHTTPClient(&http.Client{Transport: deadEngine{}}))
	assert.NilError(t, err)
	jr, err := journal.Open(t.TempDir())
	assert.NilError(t, err)
	wl := &workloads.Manager{Node: "h1", Engine: engine, Cores: func() (cpuset.Set, error) { return cpuset.Of(0, 1), nil }}
	a := &Agent{cfg: Config{Node: "h1"}, engine: engine, keys: keys, workloads: wl,
		migrator: &migrate.Migrator{Node: "h1", Engine: engine, Workloads: wl, Creds: keys, Journal: jr},
		images:   &images.Store{Node: "h1", Engine: engine},
		guard:    &guard.Guard{Engine: engine, Proc: t.TempDir(), StateDir: t.TempDir(), Self: "fleet-agent:latest"}}
	certs := map[pki.Role]*x509.Certificate{}
	for role, name := range map[pki.Role]string{pki.RoleOperator: "cli", pki.RoleNode: "h2"} {
		p, err := ca.Issue(name, role, pki.NodeValidity)
		assert.NilError(t, err)
		certs[role], err = pki.ParseCert(p.Cert)
		assert.NilError(t, err)
	}
	return a.Handler(), certs
}

// FuzzRequestBodies sends any body (and receive header) to every route of
// the agent API as a caller of the route's role: the agent must answer,
// never panic, and refuse what it cannot take with a client error.
func FuzzRequestBodies(f *testing.F) {
	routes := make([]string, 0, len(api.Access))
	for p := range api.Access {
		routes = append(routes, p)
	}
	sort.Strings(routes)
	for i := range routes {
		f.Add(uint8(i), []byte(`{}`), "")
		f.Add(uint8(i), []byte(`{"name":"web.1","service":{"name":"web","image":"x","cpuset":"0-4095,0-4095"}}`), "")
	}
	f.Add(uint8(0), []byte(`{"id":"abcdef0123","from":"h2","container":"x.1","network":"fleet","cores":-1}`), "")
	f.Add(uint8(0), []byte(`[{"name":"h2","role":"node","at":"2026-01-01T00:00:00Z"}]`), "")
	f.Add(uint8(0), []byte("\x00"), base64.StdEncoding.EncodeToString([]byte(`{"id":"x","volumes":[{"name":"/","target":"/h"}]}`)))
	h, certs := fuzzAgent(f)
	f.Fuzz(func(t *testing.T, route uint8, body []byte, header string) {
		pattern := routes[int(route)%len(routes)]
		method, path, _ := strings.Cut(pattern, " ")
		req := httptest.NewRequest(method, strings.ReplaceAll(path, "{name}", "web.1"), bytes.NewReader(body))
		req.Header.Set(api.HeaderReceive, header)
		req.Header.Set(api.HeaderMigration, "abcdef0123")
		role := api.Access[pattern][0]
		req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{certs[role]}}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		// Those need no engine; a migration streams its failure after a 200.
		noEngine := []string{"POST " + api.PathNodeCSR, "PUT " + api.PathRevocations, "POST " + api.PathExpect, "POST " + api.PathMigrate,
			"POST " + api.PathOutcome, "POST " + api.PathDrain, "DELETE " + api.PathContainer + "{name}" + api.LogsSuffix}
		if rec.Code == http.StatusOK && !slices.Contains(noEngine, pattern) {
			t.Errorf("%s with %q was accepted over a dead engine", pattern, body)
		}
	})
}
