package migrate

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os/exec"
	"strconv"

	"github.com/docker-fleet/fleet/daemonplugin/netqueue"
)

// A fenced copy's namespace holds, rather than drops, the packets that
// come in: they wait in a netfilter queue that the commit releases at
// once. A client whose packets went unanswered during the freeze sends
// again only at its next retransmission (0.2, 0.6, 1.4, 3.0, 6.2 s… after
// its first), so a dropped packet makes it wait up to twice the frozen
// window; one held is answered the moment the fence lifts. The copy sees
// none of them before the decision, and an abort drops them with it.

// holdQueue is the queue's number, in the twin's own namespace.
const holdQueue = 61934

const holdRules = `*filter
-I INPUT 1 -j NFQUEUE --queue-num 61934
COMMIT
`

const unholdRules = `*filter
-D INPUT -j NFQUEUE --queue-num 61934
COMMIT
`

// holdNetwork starts holding what comes in to the fenced namespace of
// process pid for migration id. It is only a help: where it fails, the
// fence drops the packets as before.
func (m *Migrator) holdNetwork(ctx context.Context, id string, pid int) {
	q, err := netqueue.Open("/proc", pid, holdQueue)
	if err != nil {
		log.Printf("migration %s: packets to the fenced copy are dropped, not held: %v", id, err)
		return
	}
	if out, err := iptablesRestore(ctx, pid, holdRules); err != nil {
		q.Close()
		log.Printf("migration %s: packets to the fenced copy are dropped, not held: iptables-restore: %s (%v)", id, out, err)
		return
	}
	m.holdMu.Lock()
	defer m.holdMu.Unlock()
	if m.holds == nil {
		m.holds = map[string]*netqueue.Queue{}
	}
	m.holds[id] = q
}

// releaseHold ends the hold of a committed copy whose fence is lifted:
// the rule goes (none, after an agent restart, is no error: the queue
// went with the agent, and its rule drops what comes), then what waits is
// let in. A rule that stays would cut the copy off: that is an error, and
// the decision is carried out again.
func (m *Migrator) releaseHold(ctx context.Context, id string, pid int) error {
	if out, err := iptablesRestore(ctx, pid, unholdRules); err != nil {
		// iptables -C exits 1 for a rule it does not find, and otherwise
		// fails with another status.
		check := exec.CommandContext(ctx, nsenterLauncher, fmt.Sprintf("--net=/proc/%d/ns/net", pid), "--",
			"iptables", "-C", "INPUT", "-j", "NFQUEUE", "--queue-num", strconv.Itoa(holdQueue))
		var exit *exec.ExitError
		if cerr := check.Run(); !errors.As(cerr, &exit) || exit.ExitCode() != 1 {
			return fmt.Errorf("taking the hold away: iptables-restore: %s (%w)", out, err)
		}
	}
	if q := m.takeHold(id); q != nil {
		if err := q.Release(); err != nil {
			log.Printf("migration %s: releasing the %d held packets: %v", id, q.Held(), err)
		} else {
			log.Printf("migration %s: %d packets held by the fence let in", id, q.Held())
		}
	}
	return nil
}

// dropHold ends the hold of a copy that goes: what waits is dropped.
func (m *Migrator) dropHold(id string) {
	if q := m.takeHold(id); q != nil {
		q.Close()
	}
}

func (m *Migrator) takeHold(id string) *netqueue.Queue {
	m.holdMu.Lock()
	defer m.holdMu.Unlock()
	q := m.holds[id]
	delete(m.holds, id)
	return q
}
