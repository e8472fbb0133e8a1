package fleet

import (
	"context"
	"crypto/hmac"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync/atomic"

	"github.com/docker-fleet/fleet/shared/agentclient"
	"github.com/docker-fleet/fleet/shared/pki"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// Enroll gives the agent of node n a certificate for a new key made on that
// node, signed here: its first one, when the request carries the MAC of the
// enrollment token init set on its plugin; or a rotation, when the agent
// already shows a valid certificate of the fleet for n. The key never leaves
// the node, and the old certificate serves until the new one replaces it.
func (f *Fleet) Enroll(ctx context.Context, n swarmstore.Node, token string) error {
	creds, err := f.Credentials()
	if err != nil {
		return err
	}
	ec := &enrollCreds{Pair: creds}
	agent, err := agentclient.New(ec, n.Hostname, n.Addr, n.AgentPort, f.Dial)
	if err != nil {
		return err
	}
	res, err := agent.NodeCSR(ctx)
	if err != nil {
		return fmt.Errorf("asking %s for a certificate request: %w", n.Hostname, err)
	}
	if !ec.trusted.Load() && (token == "" || !hmac.Equal([]byte(res.MAC), []byte(pki.EnrollMAC([]byte(token), res.CSR)))) {
		return fmt.Errorf("the agent at %s does not prove it is %s's (no certificate of this fleet, and its request does not carry "+
			"the MAC of the token init set on its plugin): something else answers on that address", agent.Addr, n.Hostname)
	}
	cert, err := f.CA.SignNode(res.CSR, n.Hostname, pki.NodeValidity)
	if err != nil {
		return fmt.Errorf("signing %s's certificate: %w", n.Hostname, err)
	}
	if err := agent.InstallCert(ctx, cert); err != nil {
		return fmt.Errorf("installing %s's certificate: %w", n.Hostname, err)
	}
	return nil
}

// enrollCreds dial an agent that may not have a fleet certificate yet: the
// server's certificate is checked by hand and the verdict kept, for Enroll
// to require the token's MAC instead when it fails.
type enrollCreds struct {
	pki.Pair
	trusted atomic.Bool
}

func (e *enrollCreds) ClientConfig(serverName string) (*tls.Config, error) {
	cfg, err := e.Pair.ClientConfig(serverName)
	if err != nil {
		return nil, err
	}
	verify := cfg.VerifyConnection
	roots := cfg.RootCAs
	cfg.InsecureSkipVerify = true // verified below; a failure is a verdict, not an error
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		ok := len(cs.PeerCertificates) > 0
		if ok {
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, verr := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
				DNSName: serverName, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			ok = verr == nil && verify(cs) == nil
		}
		e.trusted.Store(ok)
		return nil
	}
	return cfg, nil
}
