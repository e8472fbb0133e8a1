package keyring

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/pki"
)

func TestEnrollRotateReopen(t *testing.T) {
	ca, err := pki.NewCA("fleet")
	assert.NilError(t, err)
	dir := t.TempDir()
	k, err := Open(dir, "h1", ca.CertPEM, []byte("token"))
	assert.NilError(t, err)
	ok, _ := k.Enrolled()
	assert.Check(t, !ok)

	// Installing with no request pending, or a certificate for anything but
	// the pending key of this node from this CA, is refused.
	other, err := pki.NewCA("other")
	assert.NilError(t, err)
	stray, err := ca.Issue("h1", pki.RoleNode, pki.NodeValidity)
	assert.NilError(t, err)
	assert.Check(t, is.ErrorContains(k.Install(stray.Cert), "no certificate request"))
	req, err := k.Request()
	assert.NilError(t, err)
	assert.Check(t, is.Equal(req.MAC, pki.EnrollMAC([]byte("token"), req.CSR)))
	for name, sign := range map[string]func() ([]byte, error){
		"another key":  func() ([]byte, error) { return stray.Cert, nil },
		"another node": func() ([]byte, error) { return ca.SignNode(req.CSR, "h2", pki.NodeValidity) },
		"another CA":   func() ([]byte, error) { return other.SignNode(req.CSR, "h1", pki.NodeValidity) },
	} {
		c, err := sign()
		assert.NilError(t, err)
		assert.Check(t, k.Install(c) != nil, name)
	}
	first, err := ca.SignNode(req.CSR, "h1", pki.NodeValidity)
	assert.NilError(t, err)
	assert.NilError(t, k.Install(first))
	ok, _ = k.Enrolled()
	assert.Check(t, ok)
	served, err := k.Certificate()
	assert.NilError(t, err)

	// A rotation: until the new certificate is in, the old one serves.
	req, err = k.Request()
	assert.NilError(t, err)
	still, err := k.Certificate()
	assert.NilError(t, err)
	assert.Check(t, still == served)
	second, err := ca.SignNode(req.CSR, "h1", pki.NodeValidity)
	assert.NilError(t, err)
	assert.NilError(t, k.Install(second))

	// Reopened (the agent restarted), the node keeps its identity; the key
	// file is the owner's alone.
	again, err := Open(dir, "h1", ca.CertPEM, nil)
	assert.NilError(t, err)
	ok, _ = again.Enrolled()
	assert.Check(t, ok)
	c, err := again.Certificate()
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(c.Certificate[0], mustDER(t, second)))
	st, err := os.Stat(filepath.Join(dir, keyFile))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Mode().Perm(), os.FileMode(0o600)))

	// Under another fleet's CA the old certificate is dropped.
	foreign, err := Open(dir, "h1", other.CertPEM, nil)
	assert.NilError(t, err)
	ok, _ = foreign.Enrolled()
	assert.Check(t, !ok)
}

func mustDER(t *testing.T, certPEM []byte) []byte {
	c, err := pki.ParseCert(certPEM)
	assert.NilError(t, err)
	return c.Raw
}
