package agent

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/daemonplugin/images"
	"github.com/docker-fleet/fleet/daemonplugin/keyring"
	"github.com/docker-fleet/fleet/daemonplugin/migrate"
	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/pki"
)

// testAgent serves the agent API of node h1, enrolled in ca, over mutual TLS.
// No engine is behind it: the tests only reach what is refused before one.
func testAgent(t *testing.T, ca *pki.CA) (*Agent, *httptest.Server) {
	t.Helper()
	keys, err := keyring.Open(t.TempDir(), "h1", ca.CertPEM, []byte("token"))
	assert.NilError(t, err)
	csr, err := keys.Request()
	assert.NilError(t, err)
	cert, err := ca.SignNode(csr.CSR, "h1", pki.NodeValidity)
	assert.NilError(t, err)
	assert.NilError(t, keys.Install(cert))
	a := &Agent{cfg: Config{Node: "h1"}, keys: keys, workloads: &workloads.Manager{Node: "h1"},
		migrator: &migrate.Migrator{Node: "h1"}, images: &images.Store{Node: "h1"}}
	srv := httptest.NewUnstartedServer(a.Handler())
	srv.TLS, err = keys.ServerConfig()
	assert.NilError(t, err)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return a, srv
}

func clientFor(t *testing.T, p pki.Pair) *http.Client {
	t.Helper()
	cfg, err := p.ClientConfig("h1")
	assert.NilError(t, err)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
}

// call sends a request for an api.Access pattern ("POST /v1/…/{name}").
func call(c *http.Client, base, pattern string, hdr http.Header) (int, string, error) {
	method, path, _ := strings.Cut(pattern, " ")
	req, err := http.NewRequest(method, base+strings.ReplaceAll(path, "{name}", "web.1"), strings.NewReader("{}"))
	if err != nil {
		return 0, "", err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var e api.Error
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Message, nil
}

func TestRoleOnEveryEndpoint(t *testing.T) {
	ca, err := pki.NewCA("fleet")
	assert.NilError(t, err)
	_, srv := testAgent(t, ca)
	nodeCert, err := ca.Issue("h2", pki.RoleNode, pki.NodeValidity)
	assert.NilError(t, err)
	opCert, err := ca.Issue("cli", pki.RoleOperator, pki.OperatorValidity)
	assert.NilError(t, err)
	asNode, asOperator := clientFor(t, nodeCert), clientFor(t, opCert)

	for pattern, roles := range api.Access {
		for _, c := range []struct {
			role   pki.Role
			client *http.Client
		}{{pki.RoleNode, asNode}, {pki.RoleOperator, asOperator}} {
			if slices.Contains(roles, c.role) {
				continue
			}
			status, msg, err := call(c.client, srv.URL, pattern, nil)
			assert.NilError(t, err)
			assert.Check(t, is.Equal(status, http.StatusForbidden), "%s as %s", pattern, c.role)
			assert.Check(t, is.Contains(msg, "may not call"), "%s as %s", pattern, c.role)
		}
	}
	// Every route is in the table, and each has one role, or is an
	// operator's that the swarm leader's agent may call too.
	assert.Check(t, is.Len(api.Access, 36))
	for pattern, roles := range api.Access {
		if len(roles) == 2 {
			assert.Check(t, is.DeepEqual(roles, []pki.Role{pki.RoleOperator, pki.RoleManager}), pattern)
			continue
		}
		assert.Check(t, is.Len(roles, 1), pattern)
	}
}

// TestManagerIsANodeFromAManagersAddress: a node's certificate counts as a
// manager's only from the address of one of the swarm's managers, and then
// only for the manager's routes.
func TestManagerIsANodeFromAManagersAddress(t *testing.T) {
	ca, err := pki.NewCA("fleet")
	assert.NilError(t, err)
	a, srv := testAgent(t, ca)
	nodeCert, err := ca.Issue("h2", pki.RoleNode, pki.NodeValidity)
	assert.NilError(t, err)
	asNode := clientFor(t, nodeCert)
	fence := "POST " + api.PathFence
	leave := "POST " + api.PathLeave

	a.managers = func(context.Context) ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("10.0.0.1")}, nil }
	status, msg, err := call(asNode, srv.URL, fence, nil)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(status, http.StatusForbidden), msg)

	a.managers = func(context.Context) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	status, msg, err = call(asNode, srv.URL, fence, nil)
	assert.NilError(t, err)
	assert.Check(t, status != http.StatusForbidden, "%d %s", status, msg)
	assert.Check(t, is.Contains(msg, "containers: none named"))
	status, _, err = call(asNode, srv.URL, leave, nil)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(status, http.StatusForbidden), "a manager's agent still may not make a node leave")
}

func TestUnannouncedMigrationRefused(t *testing.T) {
	ca, err := pki.NewCA("fleet")
	assert.NilError(t, err)
	a, srv := testAgent(t, ca)
	nodeCert, err := ca.Issue("h2", pki.RoleNode, pki.NodeValidity)
	assert.NilError(t, err)
	asNode := clientFor(t, nodeCert)

	hdr := api.ReceiveHeader{ID: "abcdef0123456789", Name: "web.1", From: "h2", Checkpoint: "fleet-migration"}
	raw, err := json.Marshal(hdr)
	assert.NilError(t, err)
	h := http.Header{}
	h.Set(api.HeaderReceive, base64.StdEncoding.EncodeToString(raw))
	h.Set(api.HeaderMigration, hdr.ID)
	for _, p := range []string{"POST " + api.PathReceive, "POST " + api.PathPrepare, "POST " + api.PathImageLoad} {
		status, msg, err := call(asNode, srv.URL, p, h)
		assert.NilError(t, err)
		assert.Check(t, is.Equal(status, http.StatusForbidden), p)
		assert.Check(t, is.Contains(msg, "no operator announced it"), p)
	}

	// Announced from h3, the same request from h2 is still refused.
	_, err = a.migrator.Expect(t.Context(), api.Expectation{ID: hdr.ID, From: "h3", Container: "web.1", Network: "fleet"})
	assert.NilError(t, err)
	status, msg, err := call(asNode, srv.URL, "POST "+api.PathReceive, h)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(status, http.StatusForbidden))
	assert.Check(t, is.Contains(msg, "no operator announced it"))

	// A header with fields a migration does not carry (a host bind) is
	// refused before anything is looked up.
	evil := `{"id":"abcdef0123456789","name":"web.1","from":"h2","checkpoint":"fleet-migration","binds":["/:/host"]}`
	h.Set(api.HeaderReceive, base64.StdEncoding.EncodeToString([]byte(evil)))
	status, msg, err = call(asNode, srv.URL, "POST "+api.PathReceive, h)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(status, http.StatusBadRequest))
	assert.Check(t, is.Contains(msg, "unknown field"))
}

func TestCertificatesRefused(t *testing.T) {
	ca, err := pki.NewCA("fleet")
	assert.NilError(t, err)
	a, srv := testAgent(t, ca)
	other, err := pki.NewCA("other")
	assert.NilError(t, err)

	foreign, err := other.Issue("cli", pki.RoleOperator, pki.OperatorValidity)
	assert.NilError(t, err)
	foreign.CA = ca.CertPEM // it trusts our agent; the agent must not trust it
	expired, err := ca.Issue("cli", pki.RoleOperator, -time.Minute)
	assert.NilError(t, err)
	revoked, err := ca.Issue("h3", pki.RoleNode, pki.NodeValidity)
	assert.NilError(t, err)
	assert.NilError(t, a.keys.SetRevocations(pki.Revocations{{Name: "h3", Role: pki.RoleNode, At: time.Now().Add(time.Second)}}))

	for name, p := range map[string]pki.Pair{"another CA's": foreign, "an expired": expired, "a revoked": revoked} {
		_, _, err := call(clientFor(t, p), srv.URL, "POST "+api.PathPrepare, nil)
		assert.Check(t, err != nil, "%s certificate must be refused", name)
	}

	// A revocation takes effect on connections already open.
	ok, err := ca.Issue("h2", pki.RoleNode, pki.NodeValidity)
	assert.NilError(t, err)
	c := clientFor(t, ok)
	status, _, err := call(c, srv.URL, "POST "+api.PathPrepare, nil)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(status, http.StatusForbidden)) // unannounced, but let in
	assert.NilError(t, a.keys.SetRevocations(pki.Revocations{{Name: "h2", Role: pki.RoleNode, At: time.Now().Add(time.Second)}}))
	status, msg, err := call(c, srv.URL, "POST "+api.PathPrepare, nil)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(status, http.StatusUnauthorized))
	assert.Check(t, is.Contains(msg, "revoked"))
}

func TestBodiesBounded(t *testing.T) {
	ca, err := pki.NewCA("fleet")
	assert.NilError(t, err)
	_, srv := testAgent(t, ca)
	op, err := ca.Issue("cli", pki.RoleOperator, pki.OperatorValidity)
	assert.NilError(t, err)
	body := `{"name":"web.1","service":{"name":"web","image":"x","cpuset":"` + strings.Repeat("0-4095,", maxCreateBody/7+1) + `0"}}`
	resp, err := clientFor(t, op).Post(srv.URL+api.PathContainers, "application/json", bytes.NewReader([]byte(body)))
	assert.NilError(t, err)
	defer resp.Body.Close()
	var e api.Error
	assert.NilError(t, json.NewDecoder(resp.Body).Decode(&e))
	assert.Check(t, is.Equal(resp.StatusCode, http.StatusBadRequest))
	assert.Check(t, is.Contains(e.Message, "too large"))
}
