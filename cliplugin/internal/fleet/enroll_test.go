package fleet

import (
	"crypto/ecdsa"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/pki"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// fakeAgent answers enrollment as an agent would: it serves cert, returns a
// request for key with the MAC under token, and records what it was given.
func fakeAgent(t *testing.T, ca *pki.CA, serve tls.Certificate, key *ecdsa.PrivateKey, token string) (swarmstore.Node, *[]byte) {
	t.Helper()
	var installed []byte
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.PathNodeCSR, func(w http.ResponseWriter, r *http.Request) {
		csr, err := pki.CSR(key, "h1")
		assert.NilError(t, err)
		_ = json.NewEncoder(w).Encode(api.CSRResponse{CSR: csr, MAC: pki.EnrollMAC([]byte(token), csr)})
	})
	mux.HandleFunc("PUT "+api.PathNodeCert, func(w http.ResponseWriter, r *http.Request) {
		var req api.CertRequest
		assert.NilError(t, json.NewDecoder(r.Body).Decode(&req))
		installed = req.Cert
		_, _ = w.Write([]byte("{}"))
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serve}, ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	return swarmstore.Node{Hostname: "h1", Addr: host, AgentPort: p}, &installed
}

func TestEnroll(t *testing.T) {
	ca, err := pki.NewCA("fleet")
	assert.NilError(t, err)
	f := &Fleet{CA: ca, CertDir: t.TempDir()}
	key, err := pki.NewKey()
	assert.NilError(t, err)
	selfSigned := func() tls.Certificate {
		p, err := pki.NewCA("h1") // any certificate the fleet does not trust
		assert.NilError(t, err)
		c, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
		assert.NilError(t, err)
		return c
	}
	issued := func(name string) tls.Certificate {
		p, err := ca.Issue(name, pki.RoleNode, pki.NodeValidity)
		assert.NilError(t, err)
		c, err := tls.X509KeyPair(p.Cert, p.Key)
		assert.NilError(t, err)
		return c
	}

	// First enrollment: not trusted yet, but the request carries the MAC
	// of the install's token.
	n, installed := fakeAgent(t, ca, selfSigned(), key, "right")
	assert.NilError(t, f.Enroll(t.Context(), n, "right"))
	c, err := pki.Verify(ca.CertPEM, *installed, pki.RoleNode)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(c.Subject.CommonName, "h1"))
	assert.Check(t, c.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey), "signed for the node's own key")

	// Something else at the address: it does not know the token.
	n, installed = fakeAgent(t, ca, selfSigned(), key, "guessed")
	assert.Check(t, is.ErrorContains(f.Enroll(t.Context(), n, "right"), "does not prove it is h1's"))
	assert.Check(t, *installed == nil)

	// A rotation: the agent shows h1's certificate; no token needed.
	n, installed = fakeAgent(t, ca, issued("h1"), key, "")
	assert.NilError(t, f.Enroll(t.Context(), n, ""))
	assert.Check(t, *installed != nil)

	// Another node's certificate does not pass for h1's.
	n, installed = fakeAgent(t, ca, issued("h2"), key, "")
	assert.Check(t, is.ErrorContains(f.Enroll(t.Context(), n, ""), "does not prove it is h1's"))
	assert.Check(t, *installed == nil)
}

func TestOperatorCredentialsCached(t *testing.T) {
	ca, err := pki.NewCA("fleet")
	assert.NilError(t, err)
	dir := t.TempDir()
	a, err := (&Fleet{CA: ca, CertDir: dir}).Credentials()
	assert.NilError(t, err)
	b, err := (&Fleet{CA: ca, CertDir: dir}).Credentials()
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(a.Cert, b.Cert), "a second command reuses the cached certificate")
	c, err := pki.Verify(ca.CertPEM, a.Cert, pki.RoleOperator)
	assert.NilError(t, err)
	assert.Check(t, c.NotAfter.Sub(c.NotBefore) <= pki.OperatorValidity+10*60e9, "hours, not years")

	other, err := pki.NewCA("other")
	assert.NilError(t, err)
	o, err := (&Fleet{CA: other, CertDir: dir}).Credentials()
	assert.NilError(t, err)
	_, err = pki.Verify(other.CertPEM, o.Cert, pki.RoleOperator)
	assert.NilError(t, err, "another fleet gets its own certificate")
}
