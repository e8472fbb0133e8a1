//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/agentclient"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/pki"
)

// agentAs is a client of host h's agent holding a certificate the fleet CA
// signed for name in role: the CLI's, or a node's key as an attacker who
// took it from that node would hold it.
func agentAs(t *testing.T, ca *pki.CA, name string, role pki.Role, h string) *agentclient.Client {
	t.Helper()
	validity := pki.OperatorValidity
	if role == pki.RoleNode {
		validity = pki.NodeValidity
	}
	p, err := ca.Issue(name, role, validity)
	assert.NilError(t, err)
	return agentWith(t, p, h)
}

func agentWith(t *testing.T, p pki.Pair, h string) *agentclient.Client {
	t.Helper()
	c, err := agentclient.New(p, h, hostAddr(h), api.DefaultPort, nil)
	assert.NilError(t, err)
	return c
}

func TestNodeCertificateCommandsNothing(t *testing.T) {
	initFleet(t)
	ca := fleetCA(t)
	ctx := context.Background()
	// h2's certificate, turned against h3 and the manager.
	for _, target := range []string{"h3", manager} {
		stolen := agentAs(t, ca, "h2", pki.RoleNode, target)
		_, err := stolen.Create(ctx, api.CreateRequest{Name: "evil.1", Network: "fleet"})
		assert.Check(t, errdefs.IsPermissionDenied(err), "create on %s: %v", target, err)
		_, err = stolen.Info(ctx)
		assert.Check(t, errdefs.IsPermissionDenied(err), "info on %s: %v", target, err)
		// Not from a swarm manager's address: not the leader's agent.
		_, err = stolen.Fence(ctx, api.FenceRequest{Containers: []string{"web.1"}})
		assert.Check(t, errdefs.IsPermissionDenied(err), "fence on %s: %v", target, err)
		_, err = stolen.Ledger(ctx)
		assert.Check(t, errdefs.IsPermissionDenied(err), "ledger on %s: %v", target, err)
		assert.Check(t, errdefs.IsPermissionDenied(stolen.Leave(ctx, api.LeaveRequest{Force: true})), "leave on %s", target)
		assert.Check(t, errdefs.IsPermissionDenied(stolen.Remove(ctx, "web.1")), "rm on %s", target)
		assert.Check(t, errdefs.IsPermissionDenied(stolen.Expect(ctx, api.Expectation{ID: "abcdef012345", From: "h2", Container: "x.1", Network: "fleet"})))
		_, err = stolen.Migrate(ctx, api.MigrateRequest{ID: "abcdef012345", Container: "x.1", To: "h2", ToAddr: hostAddr("h2") + ":7477"}, nil)
		assert.Check(t, errdefs.IsPermissionDenied(err), "migrate on %s: %v", target, err)
		assert.Check(t, errdefs.IsPermissionDenied(stolen.SetRevocations(ctx, nil)))
	}
	// The CLI's certificate is no node's: it cannot push a migration.
	op := agentAs(t, ca, "e2e-operator", pki.RoleOperator, "h3")
	_, err := op.Prepare(ctx, "abcdef012345", api.PrepareRequest{Name: "x.1"})
	assert.Check(t, errdefs.IsPermissionDenied(err), "%v", err)
	_, err = op.Receive(ctx, api.ReceiveHeader{ID: "abcdef012345", Name: "x.1"}, strings.NewReader(""), func() string { return "" })
	assert.Check(t, errdefs.IsPermissionDenied(err), "%v", err)
	// A node's request for a migration nobody announced is refused.
	_, err = agentAs(t, ca, "h2", pki.RoleNode, "h3").Prepare(ctx, "abcdef012345", api.PrepareRequest{Name: "x.1"})
	assert.Check(t, is.ErrorContains(err, "no operator announced it"))
}

func TestNoPrivateKeyInPluginSettings(t *testing.T) {
	initFleet(t)
	for _, h := range append([]string{manager}, workers...) {
		raw := mustDocker(t, h, "plugin", "inspect", labels.AgentPlugin)
		assert.Check(t, !strings.Contains(raw, "PRIVATE KEY"), h)
		var ps []struct{ Settings struct{ Env []string } }
		assert.NilError(t, json.Unmarshal([]byte(raw), &ps))
		assert.Assert(t, is.Len(ps, 1))
		for _, kv := range ps[0].Settings.Env {
			_, v, _ := strings.Cut(kv, "=")
			if b, err := base64.StdEncoding.DecodeString(v); err == nil {
				assert.Check(t, !strings.Contains(string(b), "PRIVATE KEY"), "%s: %s", h, kv)
			}
		}
	}
}

// servedCert is the certificate h's agent shows; conn reports whether the
// request reused an open connection.
func servedCert(t *testing.T, c *http.Client, h string) (cert string, reused bool) {
	t.Helper()
	var state *tls.ConnectionState
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		reused = i.Reused
		if tc, ok := i.Conn.(*tls.Conn); ok {
			cs := tc.ConnectionState()
			state = &cs
		}
	}}
	ctx := httptrace.WithClientTrace(context.Background(), trace)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+hostAddr(h)+":7477"+api.PathInfo, nil)
	resp, err := c.Do(req)
	assert.NilError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.Check(t, is.Equal(resp.StatusCode, http.StatusOK))
	assert.Assert(t, state != nil && len(state.PeerCertificates) > 0)
	leaf := state.PeerCertificates[0]
	assert.Check(t, time.Until(leaf.NotAfter) <= pki.NodeValidity, "node certificates live %s at most", pki.NodeValidity)
	return leaf.SerialNumber.String(), reused
}

func TestInitRotatesNodeCertificates(t *testing.T) {
	initFleet(t)
	p, err := fleetCA(t).Issue("e2e-operator", pki.RoleOperator, pki.OperatorValidity)
	assert.NilError(t, err)
	cfg, err := p.ClientConfig("h2")
	assert.NilError(t, err)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	before, _ := servedCert(t, c, "h2")
	initFleet(t)
	// The connection opened before the rotation still serves: no restart.
	_, reused := servedCert(t, c, "h2")
	assert.Check(t, reused, "the agent's open connection did not survive the rotation")
	c.CloseIdleConnections()
	after, _ := servedCert(t, c, "h2")
	assert.Check(t, before != after, "init did not give h2 a new certificate")
}

// hostSnapshot is what a hostile stream must not change on host h: its
// containers, volumes (with their files) and a directory of the host
// outside any container.
func hostSnapshot(t *testing.T, h, victim string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(mustDocker(t, h, "ps", "-a", "--format", "{{.Names}}") + "\n")
	for _, v := range strings.Fields(mustDocker(t, h, "volume", "ls", "-q")) {
		mp := mustDocker(t, h, "volume", "inspect", v, "--format", "{{.Mountpoint}}")
		b.WriteString("volume " + v + "\n" + treeListing(t, mp))
	}
	b.WriteString(treeListing(t, victim))
	out := strings.TrimSpace(mustDocker(t, h, "system", "df", "--format", "{{.Type}} {{.Size}}"))
	b.WriteString(out)
	return b.String()
}

func treeListing(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	assert.NilError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		content := ""
		if info.Mode().IsRegular() {
			c, _ := os.ReadFile(p)
			content = string(c)
		}
		fmt.Fprintf(&b, "%s %v %d %q\n", p, info.Mode(), info.Size(), content)
		return nil
	}))
	return b.String()
}

// hostile announces a migration of evil.1 from h2 to h3 as the operator,
// prepares it as h2 (whose key the attacker holds) and sends header and body.
func hostile(t *testing.T, ca *pki.CA, h api.ReceiveHeader, body []byte) error {
	t.Helper()
	ctx := context.Background()
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	op := agentAs(t, ca, "e2e-operator", pki.RoleOperator, "h3")
	assert.NilError(t, op.Expect(ctx, api.Expectation{ID: id, From: "h2", Container: "evil.1", Network: "fleet"}))
	imageID := mustDocker(t, "h3", "image", "inspect", workload, "--format", "{{.Id}}")
	stolen := agentAs(t, ca, "h2", pki.RoleNode, "h3")
	_, err := stolen.Prepare(ctx, id, api.PrepareRequest{Name: "evil.1", Image: workload, ImageID: imageID, Files: 1 << 20, Checkpoint: 1 << 20})
	assert.NilError(t, err)
	h.ID, h.Name, h.From, h.Checkpoint, h.Network, h.IP, h.ImagesDir = id, "evil.1", "h2", "fleet-migration", "fleet", "10.215.0.250", true
	h.Config = container.Config{Image: workload, Labels: map[string]string{labels.Service: "evil", labels.NetworkName: "fleet"}}
	_, err = stolen.Receive(ctx, h, bytes.NewReader(body), func() string { return "0" })
	return err
}

type entry struct {
	hdr  tar.Header
	body string
}

func tarOf(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		e.hdr.Size = int64(len(e.body))
		assert.NilError(t, tw.WriteHeader(&e.hdr))
		_, err := tw.Write([]byte(e.body))
		assert.NilError(t, err)
	}
	assert.NilError(t, tw.Close())
	return b.Bytes()
}

// gnuSparseBomb is a tar of one old-GNU sparse entry: 512 bytes of data
// that unpack to a file of size bytes.
func gnuSparseBomb(name string, size int64) []byte {
	h := make([]byte, 512)
	copy(h[0:], name)
	octal := func(b []byte, v int64) { copy(b, fmt.Sprintf("%0*o", len(b)-1, v)) }
	octal(h[100:108], 0o644)
	octal(h[108:116], 0)
	octal(h[116:124], 0)
	octal(h[124:136], 512) // the bytes stored
	octal(h[136:148], 0)
	h[156] = 'S'
	copy(h[257:], "ustar  \x00")
	octal(h[386:398], size-512) // one region at the end…
	octal(h[398:410], 512)
	octal(h[483:495], size) // …of a file this large
	copy(h[148:156], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	out := append(h, bytes.Repeat([]byte("A"), 512)...)
	return append(out, make([]byte, 1024)...)
}

func TestHostileStreamsChangeNothing(t *testing.T) {
	initFleet(t)
	ca := fleetCA(t)
	victim := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(victim, "secret"), []byte("keep"), 0o600))
	assert.NilError(t, os.Chmod(victim, 0o700))
	mustDocker(t, "h3", "volume", "create", "e2e-data")
	t.Cleanup(func() { docker(t, "h3", "volume", "rm", "-f", "e2e-data") })
	dataMp := mustDocker(t, "h3", "volume", "inspect", "e2e-data", "--format", "{{.Mountpoint}}")
	assert.NilError(t, os.WriteFile(filepath.Join(dataMp, "marker"), []byte("another replica's data"), 0o644))

	for name, c := range map[string]struct {
		hdr  api.ReceiveHeader
		body []byte
		want string
	}{
		"symlink then directory": {body: tarOf(t,
			// The agent sees the host's root under /host/root.
			entry{hdr: tar.Header{Name: "rootfs/x", Typeflag: tar.TypeSymlink, Linkname: "/host/root" + victim, Mode: 0o777}},
			entry{hdr: tar.Header{Name: "rootfs/x/", Typeflag: tar.TypeDir, Mode: 0o777}},
			entry{hdr: tar.Header{Name: "rootfs/x/secret", Typeflag: tar.TypeReg, Mode: 0o666}, body: "overwritten"},
		), want: "receiving evil.1"},
		"sparse bomb": {body: gnuSparseBomb("rootfs/bomb", 256<<20), want: "receiving evil.1"},
		"host path as a volume": {hdr: api.ReceiveHeader{Volumes: []api.VolumeMount{{Name: "/", Target: "/host"}}},
			body: tarOf(t), want: "not a named volume"},
		"into a volume of the same name": {hdr: api.ReceiveHeader{Volumes: []api.VolumeMount{{Name: "e2e-data", Target: "/data"}}},
			body: tarOf(t, entry{hdr: tar.Header{Name: "volumes/e2e-data/marker", Typeflag: tar.TypeReg, Mode: 0o644}, body: "overwritten"}),
			want: "corrupt"},
	} {
		t.Run(name, func(t *testing.T) {
			before := hostSnapshot(t, "h3", victim)
			err := hostile(t, ca, c.hdr, c.body)
			t.Log(err)
			assert.Check(t, is.ErrorContains(err, c.want))
			assert.Check(t, is.Equal(hostSnapshot(t, "h3", victim), before), "the host changed")
		})
	}
}

func TestLeaveRevokesAtOnce(t *testing.T) {
	initFleet(t)
	sim(t, "up", "4")
	mustFleet(t, "init", "--worker", "h4")
	ca := fleetCA(t)
	// What h4's certificate would let its holder do, before and after.
	h4cert, err := ca.Issue("h4", pki.RoleNode, pki.NodeValidity)
	assert.NilError(t, err)
	asH4 := agentWith(t, h4cert, "h2")
	_, err = asH4.Prepare(context.Background(), "abcdef012345", api.PrepareRequest{Name: "x.1"})
	assert.Check(t, is.ErrorContains(err, "no operator announced it"), "before leaving, h4 is a node like any")
	mustFleet(t, "leave", "h4")
	for _, h := range []string{manager, "h2", "h3"} {
		_, err := agentWith(t, h4cert, h).Prepare(context.Background(), "abcdef012345", api.PrepareRequest{Name: "x.1"})
		assert.Check(t, err != nil && !strings.Contains(err.Error(), "announced"), "%s still takes h4's certificate: %v", h, err)
	}
	_, err = asH4.Prepare(context.Background(), "abcdef012345", api.PrepareRequest{Name: "x.1"})
	assert.Check(t, is.ErrorContains(err, "revoked"), "an open connection of h4 is refused too")
	// Joined again, h4 gets a new certificate that works.
	mustFleet(t, "init", "--worker", "h4")
	raw := mustDocker(t, manager, "config", "ls", "--filter", "label="+labels.Revocation, "--format", "{{.Name}}")
	assert.Check(t, is.Contains(raw, labels.RevocationConfigPrefix+"h4."))
	mustFleet(t, "leave", "h4")
}
