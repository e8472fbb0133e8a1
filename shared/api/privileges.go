package api

import (
	"slices"
	"strings"

	"github.com/docker-fleet/fleet/shared/spec"
)

// Privileges are what a container may be given on another node beyond a
// plain container: capabilities, security options that turn a host's
// policy off (seccomp=unconfined, …), and a log driver, whose options can
// make the engine connect anywhere. The operator (or the leader) vouches for
// them from the service's stored definition in the migration's
// announcement (Expectation, StandbyExpect), so that a peer's header
// cannot add any.
type Privileges struct {
	CapAdd []string `json:"capAdd,omitempty"`
	// Unconfined are spec.Options.Unconfined (an older destination, which
	// would drop them, refuses the field rather than confine the twin).
	Unconfined []string      `json:"unconfined,omitempty"`
	Logging    *spec.Logging `json:"logging,omitempty"`
}

// PrivilegesOf is what a service's replicas may be given (nil: nothing
// beyond a plain container).
func PrivilegesOf(s spec.Service) *Privileges {
	if len(s.CapAdd) == 0 && len(s.Unconfined) == 0 && s.Logging == nil {
		return nil
	}
	return &Privileges{CapAdd: s.CapAdd, Unconfined: s.Unconfined, Logging: s.Logging}
}

// AllowsUnconfined says whether security option o (docker's form, as
// spec.UnconfinedOpt gives it) is vouched for.
func (p *Privileges) AllowsUnconfined(o string) bool {
	return p != nil && slices.Contains(p.Unconfined, o)
}

// AllowsCap says whether capability c (with or without CAP_, in any case)
// is vouched for.
func (p *Privileges) AllowsCap(c string) bool {
	if p == nil {
		return false
	}
	norm := func(s string) string { return strings.TrimPrefix(strings.ToUpper(s), "CAP_") }
	return slices.ContainsFunc(p.CapAdd, func(a string) bool { return norm(a) == norm(c) || norm(a) == "ALL" })
}
