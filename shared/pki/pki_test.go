package pki

import (
	"crypto/tls"
	"io"
	"net"
	"testing"

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

func TestMutualTLS(t *testing.T) {
	ca, err := NewCA("fleet")
	assert.NilError(t, err)
	other, err := NewCA("other")
	assert.NilError(t, err)

	node, err := ca.Issue("h1")
	assert.NilError(t, err)
	cli, err := ca.Issue("cli")
	assert.NilError(t, err)
	stranger, err := other.Issue("cli")
	assert.NilError(t, err)

	srv, err := node.ServerConfig()
	assert.NilError(t, err)

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
	bare.Certificates = nil
	assert.Check(t, handshake(t, srv, bare) != nil)
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

	leaf, err := ca.Issue("h1")
	assert.NilError(t, err)
	_, err = ParseCA(leaf.Cert, leaf.Key)
	assert.Check(t, is.ErrorContains(err, "not a CA"))
}
