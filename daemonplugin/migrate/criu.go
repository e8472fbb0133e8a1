package migrate

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// criuOptions are what fleet migrations need from CRIU: established TCP
// connections are checkpointed and restored, and connections still being
// set up under load do not fail the dump.
var criuOptions = []string{"tcp-established", "skip-in-flight"}

// editCRIUConfig edits the host's runc CRIU configuration, which every
// engine of the host reads for checkpoints and restores (engines before 24
// pass no per-container CRIU options): it adds the lines of add that are
// missing and drops those of drop, keeping every other line.
func editCRIUConfig(hostRoot string, add, drop []string) error {
	p := filepath.Join(hostRoot, "etc/criu/runc.conf")
	old, err := os.ReadFile(p)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	var lines []string
	have := map[string]bool{}
	for _, l := range strings.Split(strings.TrimRight(string(old), "\n"), "\n") {
		if l == "" || slices.Contains(drop, strings.TrimSpace(l)) {
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
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN)
	if err := editCRIUConfig(hostRoot, append(slices.Clone(criuOptions), extra...), nil); err != nil {
		return fmt.Errorf("CRIU configuration: %w", err)
	}
	defer editCRIUConfig(hostRoot, nil, extra)
	return fn()
}

// logPath finds the CRIU log an engine error points at.
var logPath = regexp.MustCompile(`path= ?(\S+\.log)`)

// criuReason turns an engine's "criu failed: type NOTIFY errno 0" into the
// reason CRIU wrote in its log, in words a user can act on.
func criuReason(hostRoot string, err error) string {
	msg := err.Error()
	m := logPath.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	f, ferr := os.Open(filepath.Join(hostRoot, m[1]))
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
	return explainCRIU(errs, m[1])
}

func explainCRIU(errs []string, log string) string {
	all := strings.Join(errs, "\n")
	switch {
	case strings.Contains(all, "Unsupported proto 262"):
		return "the container has a multipath TCP (MPTCP) socket, which CRIU cannot checkpoint; " +
			"Go 1.24 and later listen with MPTCP by default: run the program with GODEBUG=multipathtcp=0"
	case len(errs) == 0:
		return "CRIU failed without an error line; see " + log
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
