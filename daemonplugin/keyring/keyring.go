// Package keyring is a node's identity in the fleet: the private key made
// on this node (it never leaves it), the certificate init signed for it, the
// fleet's revocations, and the TLS configurations built from them. The
// certificate can be replaced while the agent serves.
package keyring

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/errdefs"

	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/pki"
)

// Files in the state directory.
const (
	keyFile     = "node.key"
	certFile    = "node.crt"
	pendingFile = "pending.key"
	revokedFile = "revoked.json"
)

// Keyring holds the node's key and certificate.
type Keyring struct {
	dir  string
	node string
	ca   []byte
	// token authenticates this agent's first certificate request to init,
	// which set it (see api.EnvEnrollToken).
	token []byte

	mu         sync.RWMutex
	key        *ecdsa.PrivateKey
	cert       *tls.Certificate // nil until enrolled
	notAfter   time.Time
	selfSigned *tls.Certificate
	pending    *ecdsa.PrivateKey
	revoked    pki.Revocations
}

// Open loads the node's identity from dir, making its key the first time.
// A certificate that the fleet CA did not sign for this node (another
// fleet's, another name's) is dropped: the node enrolls again.
func Open(dir, node string, caPEM, token []byte) (*Keyring, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	k := &Keyring{dir: dir, node: node, ca: caPEM, token: token}
	key, err := k.loadKey(keyFile)
	if errors.Is(err, os.ErrNotExist) {
		key, err = k.newKey(keyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	k.key = key
	if k.selfSigned, err = selfSigned(key, node); err != nil {
		return nil, err
	}
	if pending, err := k.loadKey(pendingFile); err == nil {
		k.pending = pending
	}
	if certPEM, err := os.ReadFile(filepath.Join(dir, certFile)); err == nil {
		if err := k.use(key, certPEM); err != nil {
			_ = os.Remove(filepath.Join(dir, certFile))
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, revokedFile)); err == nil {
		_ = json.Unmarshal(b, &k.revoked)
	}
	return k, nil
}

// Enrolled reports whether the node has a certificate, and until when.
func (k *Keyring) Enrolled() (bool, time.Time) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.cert != nil, k.notAfter
}

// Certificate is what the agent shows: its node certificate, or before
// enrollment a self-signed one that no fleet member trusts.
func (k *Keyring) Certificate() (*tls.Certificate, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.cert != nil {
		return k.cert, nil
	}
	return k.selfSigned, nil
}

// clientCertificate is what the agent shows to peers: none before
// enrollment, so that peers refuse it with a clear reason.
func (k *Keyring) clientCertificate() (*tls.Certificate, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.cert == nil {
		return &tls.Certificate{}, nil
	}
	return k.cert, nil
}

// Revoked reports whether the fleet revoked c.
func (k *Keyring) Revoked(c *x509.Certificate) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.revoked.Revoked(c)
}

// ServerConfig is the agent API's TLS configuration.
func (k *Keyring) ServerConfig() (*tls.Config, error) {
	return pki.ServerConfig(k.ca, k.Certificate, k.Revoked)
}

// ClientConfig dials a peer agent (agentclient.Credentials).
func (k *Keyring) ClientConfig(serverName string) (*tls.Config, error) {
	return pki.NewClientConfig(k.ca, serverName, k.clientCertificate, k.Revoked)
}

// Request makes a new key and a certificate request for it; the current
// certificate serves until Install replaces it, so a rotation has no gap.
// The MAC over the request, keyed by the enrollment token, lets init tell
// this agent from anyone else answering at its address.
func (k *Keyring) Request() (api.CSRResponse, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	key, err := k.newKey(pendingFile)
	if err != nil {
		return api.CSRResponse{}, err
	}
	k.pending = key
	csr, err := pki.CSR(key, k.node)
	if err != nil {
		return api.CSRResponse{}, err
	}
	return api.CSRResponse{CSR: csr, MAC: pki.EnrollMAC(k.token, csr), Enrolled: k.cert != nil}, nil
}

// Install takes the certificate init signed for the pending key.
func (k *Keyring) Install(certPEM []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.pending == nil {
		return errdefs.ErrFailedPrecondition.WithMessage("no certificate request is pending on node " + k.node)
	}
	if err := k.use(k.pending, certPEM); err != nil {
		return errdefs.ErrInvalidArgument.WithMessage(err.Error())
	}
	keyPEM, err := pki.KeyPEM(k.pending)
	if err != nil {
		return err
	}
	// The key first: a crash in between leaves a certificate that does not
	// match it, which Open drops (the node enrolls again), never a wrong pair.
	if err := writeFile(filepath.Join(k.dir, keyFile), keyPEM); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(k.dir, certFile), certPEM); err != nil {
		return err
	}
	k.key, k.pending = k.pending, nil
	_ = os.Remove(filepath.Join(k.dir, pendingFile))
	return nil
}

// use makes certPEM the node's certificate if it is the fleet's, for this
// node, and for key. Callers hold mu (or own k).
func (k *Keyring) use(key *ecdsa.PrivateKey, certPEM []byte) error {
	c, err := pki.Verify(k.ca, certPEM, pki.RoleNode)
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	if c.Subject.CommonName != k.node {
		return fmt.Errorf("certificate is for %q, this is node %q", c.Subject.CommonName, k.node)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return errors.New("certificate is not for this node's key")
	}
	keyPEM, err := pki.KeyPEM(key)
	if err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	k.cert, k.notAfter = &pair, c.NotAfter
	return nil
}

// SetRevocations replaces the revocation list; it takes effect at once, for
// new connections and for every request on open ones.
func (k *Keyring) SetRevocations(rs pki.Revocations) error {
	b, err := json.Marshal(rs)
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.revoked = rs
	return writeFile(filepath.Join(k.dir, revokedFile), b)
}

func (k *Keyring) loadKey(name string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(filepath.Join(k.dir, name))
	if err != nil {
		return nil, err
	}
	return pki.ParseKey(b)
}

func (k *Keyring) newKey(name string) (*ecdsa.PrivateKey, error) {
	key, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	b, err := pki.KeyPEM(key)
	if err != nil {
		return nil, err
	}
	return key, writeFile(filepath.Join(k.dir, name), b)
}

// writeFile replaces a file atomically, readable by root alone.
func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// selfSigned is the certificate served before enrollment: TLS needs one,
// and init, which knows the token, does not need it to be trusted.
func selfSigned(key *ecdsa.PrivateKey, node string) (*tls.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: node, OrganizationalUnit: []string{"unenrolled"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.KeyPEM(key)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM)
	return &pair, err
}
