package migrate

import (
	"context"
	"io"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// A failed checkpoint or restore leaves CRIU's log, and nothing else, on
// the node: a copy in keptLogDir, whose path the error names. Only the
// newest keptLogs of each kind stay, so failures never fill the disk.
const (
	keptLogDir = "/var/log/docker-fleet"
	keptLogs   = 5
)

// keepLog copies the log of a failed checkpoint or restore into keptLogDir
// as the newest log of its kind (e.Op) for the container, removes the
// oldest beyond keptLogs, and returns the copy's host path ("" if none).
func (m *Migrator) keepLog(e *CRIUError, container string) string {
	if e.Log == "" {
		return ""
	}
	in, err := os.Open(m.host(e.Log))
	if err != nil {
		return ""
	}
	defer in.Close()
	dir := m.host(keptLogDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ""
	}
	prefix := "criu-" + e.Op + "-"
	name := prefix + time.Now().UTC().Format("20060102T150405.000000Z") + "-" + m.Node + "-" + safeName(container) + ".log"
	out, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return ""
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(filepath.Join(dir, name))
		return ""
	}
	pruneLogs(dir, prefix, keptLogs)
	return filepath.Join(keptLogDir, name)
}

// pruneLogs removes all but the newest n logs whose names start with
// prefix (their names sort by time).
func pruneLogs(dir, prefix string, n int) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && strings.HasSuffix(e.Name(), ".log") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	for len(names) > n {
		// Another agent of the host may have removed it already.
		_ = os.Remove(filepath.Join(dir, names[0]))
		names = names[1:]
	}
}

// safeName keeps a container name fit for a file name.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r < ' ' {
			return '_'
		}
		return r
	}, s)
}

// keepLogTimeout bounds keeping a migrated container's log: the rest of
// the source's cleanup waits for it.
const keepLogTimeout = 30 * time.Second

// keepContainerLog keeps the log of the copy here of a container that now
// runs elsewhere, before the copy is removed (docker fleet logs shows it
// with the rest). A log not kept is told, not fatal: the container is.
func (m *Migrator) keepContainerLog(ctx context.Context, id, name string) {
	if m.Logs == nil || id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, keepLogTimeout)
	defer cancel()
	if err := m.Logs.Keep(ctx, m.Engine, id, name); err != nil {
		log.Printf("keeping the log of %s before its removal from %s: %v", name, m.Node, err)
	}
}
