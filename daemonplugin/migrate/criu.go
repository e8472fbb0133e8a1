package migrate

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// criuOptions are what fleet migrations need from CRIU: established TCP
// connections are checkpointed and restored, connections still being set
// up under load do not fail the dump, and file locks (fcntl, flock: every
// database holds some) are checkpointed and restored.
var criuOptions = []string{"tcp-established", "skip-in-flight", "file-locks"}

// editCRIUConfig edits the host's runc CRIU configuration, which every
// engine of the host reads for checkpoints and restores (engines before 24
// pass no per-container CRIU options): it adds the lines of add that are
// missing and drops those drop says to (nil: none), keeping every other
// line.
func editCRIUConfig(hostRoot string, add []string, drop func(line string) bool) error {
	p := filepath.Join(hostRoot, "etc/criu/runc.conf")
	old, err := os.ReadFile(p)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	var lines []string
	have := map[string]bool{}
	for _, l := range strings.Split(strings.TrimRight(string(old), "\n"), "\n") {
		if l == "" || (drop != nil && drop(strings.TrimSpace(l))) {
			continue
		}
		lines = append(lines, l)
		have[strings.TrimSpace(l)] = true
	}
	for _, o := range add {
		if !have[o] {
			lines = append(lines, o)
		}
	}
	content := strings.Join(lines, "\n") + "\n"
	if content == string(old) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := p + ".fleet-tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// withCRIULock runs fn holding the host's CRIU lock: an flock that every
// agent on the host shares, since the configuration file is the host's.
// extra lines (images-dir for one restore) are in the configuration only
// while fn runs.
func withCRIULock(hostRoot string, extra []string, fn func() error) error {
	f, err := os.OpenFile(filepath.Join(hostRoot, "run/fleet-criu.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	defer func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN) }()
	if err := editCRIUConfig(hostRoot, append(slices.Clone(criuOptions), extra...), nil); err != nil {
		return fmt.Errorf("CRIU configuration: %w", err)
	}
	defer func() { _ = editCRIUConfig(hostRoot, nil, func(l string) bool { return slices.Contains(extra, l) }) }()
	return fn()
}

// CRIUError is a checkpoint or restore that CRIU failed, run by runc or by
// the engine, with where CRIU's log of it is on the host.
type CRIUError struct {
	Op string // "dump" or "restore"
	// Log is CRIU's log (a host path; "" if unknown), Kept the copy of it
	// the node keeps (keepLog; "" until kept, or if it could not be).
	Log, Kept string
	// Reason is why, from CRIU's log, in words a user can act on ("" until
	// explain has read it).
	Reason string
	Err    error // the failure as runc or the engine told it
}

// Error is the reason once explained: what users read.
func (e *CRIUError) Error() string {
	if e.Reason != "" {
		return e.Reason
	}
	return e.Err.Error()
}

func (e *CRIUError) Unwrap() error { return e.Err }

// logPath finds the CRIU log in an engine's error.
var logPath = regexp.MustCompile(`path= ?(\S+\.log)`)

// engineCRIUError is a checkpoint or restore the engine failed: the engine
// chose CRIU's work directory, and names the log only in its message.
func engineCRIUError(op string, err error) *CRIUError {
	e := &CRIUError{Op: op, Err: err}
	if m := logPath.FindStringSubmatch(err.Error()); m != nil {
		e.Log = m[1]
	}
	return e
}

// explain gives a failed checkpoint or restore (a CRIUError in err) the
// reason CRIU wrote in its log, and keeps that log on the node (the reason
// names the copy). Other errors are returned as they are.
func (m *Migrator) explain(err error, container string) error {
	var e *CRIUError
	if !errors.As(err, &e) {
		return err
	}
	e.Kept = m.keepLog(e, container)
	shown := e.Kept
	if shown == "" {
		shown = e.Log
	}
	e.Reason = criuReason(m.HostRoot, e, shown)
	return err
}

// criuReason turns an engine's "criu failed: type NOTIFY errno 0" into the
// reason CRIU wrote in its log, naming the log as shown.
func criuReason(hostRoot string, e *CRIUError, shown string) string {
	msg := e.Err.Error()
	if e.Log == "" {
		return msg
	}
	f, ferr := os.Open(filepath.Join(hostRoot, e.Log))
	if ferr != nil {
		return msg
	}
	defer f.Close()
	var errs []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "Error ("); i >= 0 {
			errs = append(errs, line[i:])
		}
	}
	return explainCRIU(errs, shown)
}

// criuExplained are CRIU errors the fleet knows the cause of, in a user's
// words with what to change; CRIU's line follows as detail.
var criuExplained = []struct{ match, words string }{
	{"Unsupported proto 262", "the container " + mptcpAdvice},
	{"[io_uring]", "a process " + ioUringAdvice},
	{"Can't get rlimit", "a process runs as another user than root, and CRIU cannot read its resource limits here " +
		"(root lacks CAP_SYS_RESOURCE and this CRIU is a stock build): install the fleet's CRIU build (packaging/criu)"},
	{"Failed to get stats for IPC shared memory", "the container has SysV shared memory of another user than root, " +
		"which CRIU can read only with CAP_IPC_OWNER, which the agent lacks here"},
	{"Can't dump ghost file", "a process holds a deleted file open that is larger than CRIU carries (1 MiB): " +
		"have the program close it, or keep the file until the move"},
}

func explainCRIU(errs []string, log string) string {
	if len(errs) == 0 {
		return "CRIU failed without an error line; see " + log
	}
	for _, e := range errs {
		for _, x := range criuExplained {
			if strings.Contains(e, x.match) {
				return fmt.Sprintf("%s (CRIU: %s; log: %s)", x.words, stripSource(e), log)
			}
		}
	}
	// The first error that is not the harmless rlimit complaint.
	for _, e := range errs {
		if !strings.Contains(e, "RLIMIT_NOFILE") {
			return fmt.Sprintf("CRIU: %s (log: %s)", stripSource(e), log)
		}
	}
	return fmt.Sprintf("CRIU: %s (log: %s)", stripSource(errs[0]), log)
}

// stripSource drops CRIU's "Error (criu/x.c:12): " prefix.
func stripSource(e string) string {
	if _, rest, ok := strings.Cut(e, "): "); ok {
		return rest
	}
	return e
}
