//go:build faults

package migrate

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// faultDir holds, on the host, one file per node of the faults to inject:
// lines "POINT ACTION". Only a -tags faults build reads it.
const faultDir = "/run/fleet-faults"

// fault is an injection point: at point, the node's fault file may have
// the agent exit (as if killed), hold (until the line is gone: the suite
// cuts a link or stops an engine meanwhile; NODE.at names where it holds),
// or fail with an error, or with ENOSPC (a full tmpfs or disk).
func (m *Migrator) fault(ctx context.Context, point string) error {
	file := m.host(filepath.Join(faultDir, m.Node))
	action := faultAction(file, point)
	if action == "" {
		return nil
	}
	log.Printf("fault injection: %s at %s", action, point)
	switch action {
	case "exit":
		os.Exit(3)
	case "hold":
		at := file + ".at"
		_ = os.WriteFile(at, []byte(point+"\n"), 0o644)
		defer os.Remove(at)
		for faultAction(file, point) == "hold" {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	case "fail":
		return fmt.Errorf("injected fault at %s", point)
	case "nospc":
		return fmt.Errorf("injected fault at %s: %w", point, syscall.ENOSPC)
	}
	return nil
}

func faultAction(file, point string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if p, a, ok := strings.Cut(strings.TrimSpace(sc.Text()), " "); ok && p == point {
			return strings.TrimSpace(a)
		}
	}
	return ""
}
