// Package pki holds the fleet's certificate authority: the CA that init
// creates and keeps in the swarm, the certificates it issues to agents and
// clients, and the mutual-TLS configurations both sides use.
package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

const (
	caValidity = 10 * 365 * 24 * time.Hour
	// NodeValidity bounds a node certificate: init renews every node's on
	// each run, so a fleet that is looked after never sees one expire.
	NodeValidity = 90 * 24 * time.Hour
	// OperatorValidity is the CLI's certificate: hours, cached and renewed
	// without the user noticing.
	OperatorValidity = 12 * time.Hour
	// Clocks of simulated and real hosts drift; do not reject a fresh certificate.
	backdate = 5 * time.Minute
)

// CA is the fleet certificate authority.
type CA struct {
	Cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	CertPEM []byte
	KeyPEM  []byte
}

// Pair is a PEM certificate and key issued by the fleet CA, with the CA
// certificate that verifies peers.
type Pair struct {
	CA   []byte `json:"ca"`
	Cert []byte `json:"cert"`
	Key  []byte `json:"key"`
}

// NewCA creates a self-signed CA named after the fleet.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"docker fleet"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return ParseCA(
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	)
}

// Bundle is the CA as one PEM document (certificate, then key), the form in
// which the fleet stores it.
func (ca *CA) Bundle() []byte {
	return append(append([]byte{}, ca.CertPEM...), ca.KeyPEM...)
}

// ParseBundle loads a CA stored with Bundle.
func ParseBundle(data []byte) (*CA, error) {
	i := bytes.Index(data, []byte("-----BEGIN EC PRIVATE KEY-----"))
	if i < 0 {
		return nil, errors.New("fleet CA bundle: no EC private key")
	}
	return ParseCA(data[:i], data[i:])
}

// ParseCA loads a CA from PEM.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("fleet CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("fleet CA certificate: not a CA")
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("fleet CA key: no PEM block")
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("fleet CA key: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("fleet CA key does not match its certificate")
	}
	return &CA{Cert: cert, key: key, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// Issue signs a certificate for name with a fresh key. It is what tests and
// the CLI's own identity use; a node's key is made on the node (SignNode).
func (ca *CA) Issue(name string, role Role, validity time.Duration) (Pair, error) {
	key, err := NewKey()
	if err != nil {
		return Pair{}, err
	}
	cert, err := ca.sign(name, role, &key.PublicKey, validity)
	if err != nil {
		return Pair{}, err
	}
	keyPEM, err := KeyPEM(key)
	if err != nil {
		return Pair{}, err
	}
	return Pair{CA: ca.CertPEM, Cert: cert, Key: keyPEM}, nil
}

// SignNode signs a node's certificate request. The name comes from the
// operator's view of the swarm, never from the request, whose only
// contribution is its public key (proven by its signature).
func (ca *CA) SignNode(csrPEM []byte, node string, validity time.Duration) ([]byte, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("certificate request: no PEM block")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	return ca.sign(node, RoleNode, csr.PublicKey, validity)
}

// sign makes the certificate of a role. Nodes serve the agent API and call
// peers, so theirs is good for both ends; an operator only ever calls.
func (ca *CA) sign(name string, role Role, pub any, validity time.Duration) ([]byte, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{CommonName: name, Organization: []string{"docker fleet"},
			OrganizationalUnit: []string{string(role)}},
		NotBefore:   now.Add(-backdate),
		NotAfter:    now.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	switch role {
	case RoleNode:
		tmpl.DNSNames = []string{name}
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	case RoleOperator:
	default:
		return nil, fmt.Errorf("unknown role %q", role)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// ServerConfig is the agent's TLS configuration: TLS 1.3 only, the
// agent's certificate from cert (it changes when init rotates it), and a
// client certificate from the fleet CA that revoked does not refuse.
func ServerConfig(caPEM []byte, cert func() (*tls.Certificate, error), revoked func(*x509.Certificate) bool) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("fleet CA certificate: no certificate in PEM")
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert() },
		ClientCAs:      pool,
		ClientAuth:     tls.RequireAndVerifyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return checkPeer(cs, "", revoked)
		},
	}, nil
}

// ClientConfig dials an agent that must present a node certificate from
// the fleet CA for serverName (the node's hostname).
func (p Pair) ClientConfig(serverName string) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(p.Cert, p.Key)
	if err != nil {
		return nil, fmt.Errorf("fleet certificate: %w", err)
	}
	return NewClientConfig(p.CA, serverName, func() (*tls.Certificate, error) { return &cert, nil }, nil)
}

// NewClientConfig dials the agent of serverName, showing cert, trusting only
// a node certificate of the fleet CA that revoked (may be nil) accepts.
func NewClientConfig(caPEM []byte, serverName string, cert func() (*tls.Certificate, error), revoked func(*x509.Certificate) bool) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("fleet CA certificate: no certificate in PEM")
	}
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		RootCAs:              pool,
		ServerName:           serverName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert() },
		VerifyConnection: func(cs tls.ConnectionState) error {
			return checkPeer(cs, RoleNode, revoked)
		},
	}, nil
}

// checkPeer refuses a verified peer whose certificate is revoked or does
// not carry the role the caller needs (want "" takes any known role).
func checkPeer(cs tls.ConnectionState, want Role, revoked func(*x509.Certificate) bool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no peer certificate")
	}
	leaf := cs.PeerCertificates[0]
	id := IdentityOf(leaf)
	switch {
	case id.Role != RoleNode && id.Role != RoleOperator:
		return fmt.Errorf("certificate of %q has no fleet role", id.Name)
	case want != "" && id.Role != want:
		return fmt.Errorf("certificate of %q is an %s's, not a %s's", id.Name, id.Role, want)
	case revoked != nil && revoked(leaf):
		return fmt.Errorf("certificate of %s %q is revoked", id.Role, id.Name)
	}
	return nil
}

func parseCert(certPEM []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}
