package agent

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/pki"
)

type peerKey struct{}

// authorize lets a request through only from a caller whose certificate
// (already verified against the fleet CA by TLS) has one of roles and is
// not revoked: revocation is checked on every request, so a revoked peer's
// open connection is refused at once too.
func (a *Agent) authorize(roles []pki.Role, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			reply(w, nil, workloads.Refuse(errdefs.ErrUnauthenticated, "a fleet certificate is required"))
			return
		}
		leaf := r.TLS.PeerCertificates[0]
		id := pki.IdentityOf(leaf)
		if a.keys != nil && a.keys.Revoked(leaf) {
			reply(w, nil, workloads.Refuse(errdefs.ErrUnauthenticated, "the certificate of %s %q is revoked", id.Role, id.Name))
			return
		}
		if id.Role == pki.RoleNode && !slices.Contains(roles, pki.RoleNode) && slices.Contains(roles, pki.RoleManager) && a.fromManager(r) {
			id.Role = pki.RoleManager
		}
		if !slices.Contains(roles, id.Role) {
			reply(w, nil, workloads.Refuse(errdefs.ErrPermissionDenied, "%s %q may not call %s %s on node %s (allowed: %v)",
				id.Role, id.Name, r.Method, r.URL.Path, a.cfg.Node, roles))
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), peerKey{}, id)))
	})
}

// fromManager says whether a request comes from the address of one of the
// swarm's managers, as this node's engine knows them.
func (a *Agent) fromManager(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil || a.managers == nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	addrs, err := a.managers(r.Context())
	if err != nil {
		return false
	}
	return slices.Contains(addrs, ip.Unmap())
}

// swarmManagers are the addresses of the swarm's managers as the engine
// knows them.
func (a *Agent) swarmManagers(ctx context.Context) ([]netip.Addr, error) {
	info, err := a.engine.Info(ctx, client.InfoOptions{})
	if err != nil {
		return nil, err
	}
	out := managerAddrs(info.Info.Swarm.RemoteManagers)
	if len(out) == 0 {
		// Between leaving its old membership and joining again (rejoin),
		// or if that join failed, the engine knows no manager: the ones it
		// knew still count for a while, so the leader can try again.
		a.leftMu.Lock()
		defer a.leftMu.Unlock()
		if time.Since(a.leftAt) < leftTrust {
			out = a.leftManagers
		}
	}
	return out, nil
}

// leftTrust is how long the managers an engine knew before rejoin left
// its membership still count as managers.
const leftTrust = 10 * time.Minute

func managerAddrs(peers []swarm.Peer) []netip.Addr {
	var out []netip.Addr
	for _, m := range peers {
		if ap, err := netip.ParseAddrPort(m.Addr); err == nil {
			out = append(out, ap.Addr().Unmap())
		}
	}
	return out
}

// peer is the authenticated caller of a request that authorize let through.
func peer(ctx context.Context) pki.Identity {
	id, _ := ctx.Value(peerKey{}).(pki.Identity)
	return id
}

// nodeCSR makes a new node key and returns its certificate request.
func (a *Agent) nodeCSR(context.Context, struct{}) (api.CSRResponse, error) {
	return a.keys.Request()
}

// installCert takes the certificate init signed: served from the next
// handshake on, with no restart.
func (a *Agent) installCert(_ context.Context, req api.CertRequest) (struct{}, error) {
	return struct{}{}, a.keys.Install(req.Cert)
}

// setRevocations replaces the fleet's revocation list on this node.
func (a *Agent) setRevocations(_ context.Context, rs pki.Revocations) (struct{}, error) {
	if len(rs) > maxRevocations {
		return struct{}{}, workloads.Refuse(errdefs.ErrInvalidArgument, "%d revocations: at most %d", len(rs), maxRevocations)
	}
	return struct{}{}, a.keys.SetRevocations(rs)
}

// maxRevocations bounds the list (a body limit already bounds its bytes).
const maxRevocations = 1000

func (a *Agent) certNotAfter() time.Time {
	if a.keys == nil {
		return time.Time{}
	}
	_, t := a.keys.Enrolled()
	return t
}
