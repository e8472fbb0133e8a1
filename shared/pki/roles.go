package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"time"
)

// Role is what a certificate's holder may do, written in its
// organizational unit: the CLI is an operator, an agent a node.
type Role string

const (
	RoleOperator Role = "operator"
	RoleNode     Role = "node"
	// RoleManager is in no certificate: a node's certificate presented
	// from the address of one of the swarm's managers, where the agent
	// that relocates a dead node's containers runs. The swarm's managers
	// already command every engine of the swarm.
	RoleManager Role = "manager"
)

// Identity is who a verified certificate names.
type Identity struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
}

// IdentityOf reads the name and role of a certificate already verified.
func IdentityOf(c *x509.Certificate) Identity {
	id := Identity{Name: c.Subject.CommonName}
	if len(c.Subject.OrganizationalUnit) == 1 {
		id.Role = Role(c.Subject.OrganizationalUnit[0])
	}
	return id
}

// Revocation refuses every certificate of a name and role issued up to At:
// a node that left loses all its certificates at once, and gets a valid one
// again only when init enrolls it anew.
type Revocation struct {
	Name string    `json:"name"`
	Role Role      `json:"role"`
	At   time.Time `json:"at"`
}

// Revocations is the fleet's list.
type Revocations []Revocation

// Revoked reports whether the list refuses c.
func (rs Revocations) Revoked(c *x509.Certificate) bool {
	id := IdentityOf(c)
	issued := c.NotBefore.Add(backdate)
	for _, r := range rs {
		if r.Name == id.Name && r.Role == id.Role && !issued.After(r.At) {
			return true
		}
	}
	return false
}

// NewKey makes a private key of the kind the fleet uses.
func NewKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// KeyPEM encodes a private key.
func KeyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// ParseKey decodes a key written by KeyPEM.
func ParseKey(keyPEM []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("key: no PEM block")
	}
	return x509.ParseECPrivateKey(block.Bytes)
}

// CSR is a node's certificate request for its own key.
func CSR(key *ecdsa.PrivateKey, node string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: node},
	}, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// ParseCert decodes one PEM certificate.
func ParseCert(certPEM []byte) (*x509.Certificate, error) { return parseCert(certPEM) }

// Verify checks that certPEM was issued by the CA in caPEM and is valid now
// for role.
func Verify(caPEM, certPEM []byte, role Role) (*x509.Certificate, error) {
	c, err := parseCert(certPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("fleet CA certificate: no certificate in PEM")
	}
	usage := x509.ExtKeyUsageClientAuth
	if role == RoleNode {
		usage = x509.ExtKeyUsageServerAuth
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return nil, err
	}
	if got := IdentityOf(c).Role; got != role {
		return nil, errors.New("certificate is not a " + string(role) + "'s")
	}
	return c, nil
}

// EnrollMAC is the HMAC-SHA256 of a node's certificate request under its
// enrollment token: it proves the request comes from the agent init
// installed, before that agent has a certificate anyone trusts.
func EnrollMAC(token, csr []byte) string {
	if len(token) == 0 {
		return ""
	}
	h := hmac.New(sha256.New, token)
	h.Write(csr)
	return hex.EncodeToString(h.Sum(nil))
}
