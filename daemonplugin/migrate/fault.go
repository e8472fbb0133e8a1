//go:build !faults

package migrate

import "context"

// fault is an injection point of the fault suite (make faults builds the
// agent with -tags faults; see fault_faults.go). In every other build it
// does nothing.
func (m *Migrator) fault(context.Context, string) error { return nil }
