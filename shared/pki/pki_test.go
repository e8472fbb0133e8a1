package pki

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// handshake runs a TLS handshake between a server and a client config over
// an in-memory pipe and returns the client's error (or the server's).
func handshake(t *testing.T, server, client *tls.Config) error {
	t.Helper()
	a, b := net.Pipe()
	done := make(chan error, 1)
	go func() {
		s := tls.Server(a, server)
		err := s.Handshake()
		if err == nil {
			// TLS 1.3 reports a bad client certificate after the client's
			// handshake returns: read to surface it on both ends.
			_, err = s.Write([]byte("ok"))
		}
		_ = s.Close()
		done <- err
	}()
	c := tls.Client(b, client)
	err := c.Handshake()
	if err == nil {
		_, err = io.ReadAll(c)
	}
	_ = c.Close()
	if serr := <-done; err == nil {
		err = serr
	}
	return err
}

// serverFor is the TLS configuration of an agent holding pair.
func serverFor(t *testing.T, pair Pair, revoked func(*x509.Certificate) bool) *tls.Config {
	t.Helper()
	cert, err := tls.X509KeyPair(pair.Cert, pair.Key)
	assert.NilError(t, err)
	srv, err := ServerConfig(pair.CA, func() (*tls.Certificate, error) { return &cert, nil }, revoked)
	assert.NilError(t, err)
	return srv
}

func TestMutualTLS(t *testing.T) {
	ca, err := NewCA("fleet")
	assert.NilError(t, err)
	other, err := NewCA("other")
	assert.NilError(t, err)

	node, err := ca.Issue("h1", RoleNode, NodeValidity)
	assert.NilError(t, err)
	cli, err := ca.Issue("cli", RoleOperator, OperatorValidity)
	assert.NilError(t, err)
	stranger, err := other.Issue("cli", RoleOperator, OperatorValidity)
	assert.NilError(t, err)

	srv := serverFor(t, node, nil)
	good, err := cli.ClientConfig("h1")
	assert.NilError(t, err)
	assert.NilError(t, handshake(t, srv, good))

	wrongName, err := cli.ClientConfig("h2")
	assert.NilError(t, err)
	assert.ErrorContains(t, handshake(t, srv, wrongName), "h2")

	// A client certificate from another CA is refused by the server.
	foreign := stranger
	foreign.CA = ca.CertPEM // trusts our server, but its own cert is foreign
	fc, err := foreign.ClientConfig("h1")
	assert.NilError(t, err)
	assert.Check(t, handshake(t, srv, fc) != nil)

	// No client certificate at all is refused.
	bare := good.Clone()
	bare.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tls.Certificate{}, nil }
	assert.Check(t, handshake(t, srv, bare) != nil)

	// An operator certificate cannot serve: a client of the fleet refuses
	// any server but a node.
	asServer := serverFor(t, Pair{CA: ca.CertPEM, Cert: cli.Cert, Key: cli.Key}, nil)
	toCLI, err := node.ClientConfig(operatorName(t, cli))
	assert.NilError(t, err)
	assert.Check(t, handshake(t, asServer, toCLI) != nil)
}

func operatorName(t *testing.T, p Pair) string {
	c, err := ParseCert(p.Cert)
	assert.NilError(t, err)
	return c.Subject.CommonName
}

func TestRoles(t *testing.T) {
	ca, err := NewCA("fleet")
	assert.NilError(t, err)
	node, err := ca.Issue("h2", RoleNode, NodeValidity)
	assert.NilError(t, err)
	op, err := ca.Issue("cli", RoleOperator, OperatorValidity)
	assert.NilError(t, err)
	nc, err := Verify(ca.CertPEM, node.Cert, RoleNode)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(IdentityOf(nc), Identity{Name: "h2", Role: RoleNode}))
	oc, err := Verify(ca.CertPEM, op.Cert, RoleOperator)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(IdentityOf(oc), Identity{Name: "cli", Role: RoleOperator}))
	_, err = Verify(ca.CertPEM, op.Cert, RoleNode)
	assert.Check(t, err != nil, "an operator certificate is no node's")
	_, err = Verify(ca.CertPEM, node.Cert, RoleOperator)
	assert.Check(t, err != nil, "a node certificate is no operator's")
	_, err = ca.Issue("x", Role("admin"), time.Hour)
	assert.Check(t, is.ErrorContains(err, "unknown role"))
}

func TestExpiredRefused(t *testing.T) {
	ca, err := NewCA("fleet")
	assert.NilError(t, err)
	node, err := ca.Issue("h1", RoleNode, NodeValidity)
	assert.NilError(t, err)
	// Valid for less than the backdating: expired on issue.
	old, err := ca.Issue("cli", RoleOperator, -time.Minute)
	assert.NilError(t, err)
	cfg, err := old.ClientConfig("h1")
	assert.NilError(t, err)
	assert.Check(t, is.ErrorContains(handshake(t, serverFor(t, node, nil), cfg), "expired"))
}

func TestRevocation(t *testing.T) {
	ca, err := NewCA("fleet")
	assert.NilError(t, err)
	node, err := ca.Issue("h1", RoleNode, NodeValidity)
	assert.NilError(t, err)
	peer, err := ca.Issue("h3", RoleNode, NodeValidity)
	assert.NilError(t, err)
	rs := Revocations{{Name: "h3", Role: RoleNode, At: time.Now()}}
	srv := serverFor(t, node, rs.Revoked)
	cfg, err := peer.ClientConfig("h1")
	assert.NilError(t, err)
	assert.Check(t, handshake(t, srv, cfg) != nil)
	c0, err := ParseCert(peer.Cert)
	assert.NilError(t, err)
	assert.Check(t, rs.Revoked(c0))

	// Enrolled again after the revocation, the node is welcome.
	// (Certificates keep whole seconds: within the revocation's second, a
	// new one counts as revoked too, which errs on the safe side.)
	time.Sleep(1100 * time.Millisecond)
	again, err := ca.Issue("h3", RoleNode, NodeValidity)
	assert.NilError(t, err)
	c, err := ParseCert(again.Cert)
	assert.NilError(t, err)
	assert.Check(t, !rs.Revoked(c))
	cfg, err = again.ClientConfig("h1")
	assert.NilError(t, err)
	assert.NilError(t, handshake(t, srv, cfg))

	// An operator of the same name is another identity.
	op, err := ca.Issue("h3", RoleOperator, OperatorValidity)
	assert.NilError(t, err)
	oc, err := ParseCert(op.Cert)
	assert.NilError(t, err)
	assert.Check(t, !rs.Revoked(oc))
}

func TestSignNode(t *testing.T) {
	ca, err := NewCA("fleet")
	assert.NilError(t, err)
	key, err := NewKey()
	assert.NilError(t, err)
	csr, err := CSR(key, "evil-name")
	assert.NilError(t, err)
	certPEM, err := ca.SignNode(csr, "h2", NodeValidity)
	assert.NilError(t, err)
	c, err := Verify(ca.CertPEM, certPEM, RoleNode)
	assert.NilError(t, err)
	// The name is the operator's, not the request's.
	assert.Check(t, is.Equal(c.Subject.CommonName, "h2"))
	assert.Check(t, is.DeepEqual(c.DNSNames, []string{"h2"}))
	assert.Check(t, c.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey))
	assert.Check(t, c.NotAfter.Before(time.Now().Add(NodeValidity+time.Minute)))

	// A tampered request is refused.
	bad := []byte(strings.Replace(string(csr), "A", "B", 3))
	_, err = ca.SignNode(bad, "h2", NodeValidity)
	assert.Check(t, err != nil)

	// The token's MAC binds a request to the token.
	mac := EnrollMAC([]byte("token"), csr)
	assert.Check(t, mac != "" && mac != EnrollMAC([]byte("other"), csr) && mac != EnrollMAC([]byte("token"), bad))
	assert.Check(t, is.Equal(EnrollMAC(nil, csr), ""))
}

func TestParseCARoundTrip(t *testing.T) {
	ca, err := NewCA("fleet")
	assert.NilError(t, err)
	again, err := ParseCA(ca.CertPEM, ca.KeyPEM)
	assert.NilError(t, err)
	assert.Check(t, again.Cert.Equal(ca.Cert))

	fromBundle, err := ParseBundle(ca.Bundle())
	assert.NilError(t, err)
	assert.Check(t, fromBundle.Cert.Equal(ca.Cert))
	_, err = ParseBundle(ca.CertPEM)
	assert.Check(t, is.ErrorContains(err, "no EC private key"))

	other, err := NewCA("other")
	assert.NilError(t, err)
	_, err = ParseCA(ca.CertPEM, other.KeyPEM)
	assert.Check(t, is.ErrorContains(err, "does not match"))
	_, err = ParseCA([]byte("junk"), ca.KeyPEM)
	assert.Check(t, is.ErrorContains(err, "certificate"))

	leaf, err := ca.Issue("h1", RoleNode, NodeValidity)
	assert.NilError(t, err)
	_, err = ParseCA(leaf.Cert, leaf.Key)
	assert.Check(t, is.ErrorContains(err, "not a CA"))
}
