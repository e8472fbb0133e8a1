package api

import "github.com/docker-fleet/fleet/shared/pki"

// Paths of the node's identity and the fleet's trust.
const (
	// PathNodeCSR: init asks the agent for a certificate request for a new
	// key made on the node (CSRResponse).
	PathNodeCSR = "/v1/node/csr"
	// PathNodeCert: init installs the certificate it signed (CertRequest).
	PathNodeCert = "/v1/node/cert"
	// PathRevocations: the fleet's revocation list (pki.Revocations).
	PathRevocations = "/v1/revocations"
)

// CSRResponse is a node's certificate request. MAC is the HMAC-SHA256 of
// CSR under the enrollment token init set on the plugin: it proves the
// request comes from the agent init installed, before that agent has a
// certificate anyone trusts.
type CSRResponse struct {
	CSR      []byte `json:"csr"`
	MAC      string `json:"mac"`
	Enrolled bool   `json:"enrolled"`
}

// CertRequest carries the node certificate init signed.
type CertRequest struct {
	Cert []byte `json:"cert"`
}

var (
	operator = []pki.Role{pki.RoleOperator}
	node     = []pki.Role{pki.RoleNode}
	// manager: the CLI, or the agent of a swarm manager relocating a dead
	// node's containers or rebalancing the fleet (pki.RoleManager).
	manager = []pki.Role{pki.RoleOperator, pki.RoleManager}
)

// Access is every route the agent serves and the roles allowed to call it.
// Operators (the CLI) change nodes; nodes only move a migration an operator
// or the leader's agent announced to the destination (PathExpect).
var Access = map[string][]pki.Role{
	"GET " + PathInfo:                                  operator,
	"GET " + PathMetrics:                               operator,
	"GET " + PathLedger:                                manager,
	"POST " + PathContainers:                           manager,
	"POST " + PathFence:                                manager,
	"GET " + PathContainer + "{name}":                  operator,
	"DELETE " + PathContainer + "{name}":               operator,
	"POST " + PathContainer + "{name}" + ResizeSuffix:  operator,
	"POST " + PathContainer + "{name}" + PromoteSuffix: operator,
	"GET " + PathContainer + "{name}" + LogsSuffix:     operator,
	"DELETE " + PathContainer + "{name}" + LogsSuffix:  operator,
	"POST " + PathMigrate:                              manager,
	"POST " + PathMigrateCheck:                         manager,
	"POST " + PathFollow:                               operator,
	"POST " + PathExpect:                               manager,
	"POST " + PathLeave:                                operator,
	"PUT " + PathGuard:                                 operator,
	"POST " + PathDrain:                                operator,
	"POST " + PathNodeCSR:                              operator,
	"PUT " + PathNodeCert:                              operator,
	"PUT " + PathRevocations:                           operator,
	"POST " + PathPrepare:                              node,
	"POST " + PathImageLoad:                            node,
	"POST " + PathReceive:                              node,
	"POST " + PathDecision:                             node,
	"POST " + PathOutcome:                              node,
	"POST " + PathImages:                               operator,
	"POST " + PathImageExpect:                          operator,
	"POST " + PathImageSend:                            operator,
	// A node takes only an image an operator told it to expect, of that
	// ID, from that node (PathImageExpect).
	"POST " + PathImagePush:      node,
	"POST " + PathRejoin:         manager,
	"POST " + PathStandbyAssign:  manager,
	"POST " + PathStandbyExpect:  manager,
	"POST " + PathStandbyDrop:    manager,
	"POST " + PathStandbyRestore: manager,
	// A node takes a checkpoint only of a container the leader told it to
	// expect from that node (PathStandbyExpect).
	"POST " + PathStandbyReceive: node,
}
