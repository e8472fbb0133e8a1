package fleet

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/docker/cli/cli/config"

	"github.com/docker-fleet/fleet/shared/pki"
)

// renewBefore is how long before its expiry the CLI's certificate is
// replaced: a command never starts with one about to lapse.
const renewBefore = time.Hour

// operatorName is the common name of the CLI's certificates.
const operatorName = "docker-fleet-cli"

// Credentials are this user's operator certificate: short-lived, cached
// under the docker config directory (one file per fleet CA, readable by the
// user alone) and renewed silently.
func (f *Fleet) Credentials() (pki.Pair, error) {
	f.credsOnce.Do(func() { f.creds, f.credsErr = f.operatorCreds() })
	return f.creds, f.credsErr
}

func (f *Fleet) operatorCreds() (pki.Pair, error) {
	dir := f.CertDir
	if dir == "" {
		dir = filepath.Join(config.Dir(), "fleet", "certs")
	}
	sum := sha256.Sum256(f.CA.Cert.Raw)
	path := filepath.Join(dir, hex.EncodeToString(sum[:8])+".pem")
	if p, err := readCached(path, f.CA); err == nil {
		return p, nil
	}
	p, err := f.CA.Issue(operatorName, pki.RoleOperator, pki.OperatorValidity)
	if err != nil {
		return p, err
	}
	// A cache that cannot be written costs a signature per command, no more.
	if os.MkdirAll(dir, 0o700) == nil {
		tmp := path + ".tmp"
		if os.WriteFile(tmp, append(append([]byte{}, p.Cert...), p.Key...), 0o600) == nil {
			_ = os.Rename(tmp, path)
		}
	}
	return p, nil
}

// readCached loads a cached certificate that the fleet CA issued and that
// stays valid for a while yet.
func readCached(path string, ca *pki.CA) (pki.Pair, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return pki.Pair{}, err
	}
	i := bytes.Index(b, []byte("-----BEGIN EC PRIVATE KEY-----"))
	if i < 0 {
		return pki.Pair{}, errors.New("no key")
	}
	p := pki.Pair{CA: ca.CertPEM, Cert: b[:i], Key: b[i:]}
	c, err := pki.Verify(ca.CertPEM, p.Cert, pki.RoleOperator)
	if err != nil {
		return p, err
	}
	if time.Until(c.NotAfter) < renewBefore {
		return p, errors.New("expiring")
	}
	if _, err := p.ClientConfig("x"); err != nil { // the key matches
		return p, err
	}
	return p, nil
}
