// Package logstore keeps the logs of containers that migrated away from
// this node, which their engine removes with them, and reads a container's
// live log from its engine as lines (api.LogLine).
//
// A kept part is one file, DIR/NAME@KEPT.jsonl (KEPT the UTC time it was
// kept, so that a name's parts sort oldest first): a header line naming
// the container and the node, then one api.LogLine a line. Only the newest
// MaxPerName bytes of a name are kept on a node, and MaxTotal bytes of all.
package logstore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
)

// Bounds of what a node keeps: a chatty container that migrates often does
// not fill the engine's disk.
var (
	MaxPerName int64 = 8 << 20
	MaxTotal   int64 = 256 << 20
)

// keepTail bounds the lines read from the engine when a part is kept, so
// that the engine reads a huge log from its end, not whole.
const keepTail = 1 << 18

// maxLine bounds one line as kept or streamed; a longer one is cut.
const maxLine = 1 << 20

// namePattern is docker's own rule for container names (nothing that
// could leave the directory, "/" or "..", is a name), short enough that a
// part's file name stays within 255 bytes.
var namePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,199}$`)

// ValidName refuses a name that is not a container's.
func ValidName(name string) error {
	if !namePattern.MatchString(name) {
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("%q is not a container name", name))
	}
	return nil
}

// Store is the node's kept parts. A nil Store keeps nothing and has none.
type Store struct {
	Dir  string
	Node string

	mu sync.Mutex
}

// header is a kept part's first line.
type header struct {
	Container   string    `json:"container"`
	Node        string    `json:"node"`
	ContainerID string    `json:"containerID,omitempty"`
	Kept        time.Time `json:"kept"`
}

const (
	sep    = "@"
	suffix = ".jsonl"
	stamp  = "20060102T150405.000000000Z"
)

// Keep saves the log of container id, named name, before it is removed
// from this node: its newest MaxPerName bytes, as one part.
func (s *Store) Keep(ctx context.Context, engine client.APIClient, id, name string) error {
	if s == nil {
		return nil
	}
	if err := ValidName(name); err != nil {
		return err
	}
	if s.kept(name, id) {
		// Kept already: the removal after it failed, and is tried again.
		return nil
	}
	c, err := engine.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	now := time.Now().UTC()
	h, err := json.Marshal(header{Container: name, Node: s.Node, ContainerID: id, Kept: now})
	if err != nil {
		return err
	}
	h = append(h, '\n')
	r, err := OpenEngine(ctx, engine, id, api.LogsQuery{Tail: keepTail})
	if err != nil {
		return err
	}
	defer r.Close()
	var ring lineRing
	tty := c.Container.Config != nil && c.Container.Config.Tty
	if err := Demux(r, tty, func(l api.LogLine) error {
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		ring.push(append(b, '\n'), MaxPerName-int64(len(h)))
		return nil
	}); err != nil {
		return err
	}
	if len(ring.lines) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("kept logs: %w", err)
	}
	if err := s.write(name+sep+now.Format(stamp)+suffix, h, ring.lines); err != nil {
		return err
	}
	s.prune(name)
	return nil
}

// kept says whether a part of name comes from container id.
func (s *Store) kept(name, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, _ := s.parts(name)
	for _, p := range ps {
		if h, err := readHeader(filepath.Join(s.Dir, p.file)); err == nil && h.ContainerID == id {
			return true
		}
	}
	return false
}

func readHeader(path string) (header, error) {
	var h header
	f, err := os.Open(path)
	if err != nil {
		return h, err
	}
	defer f.Close()
	err = json.NewDecoder(bufio.NewReader(f)).Decode(&h)
	return h, err
}

// write makes file name of dir whole or not at all.
func (s *Store) write(name string, head []byte, lines [][]byte) error {
	tmp, err := os.CreateTemp(s.Dir, ".tmp-")
	if err != nil {
		return fmt.Errorf("kept logs: %w", err)
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	_, err = w.Write(head)
	for _, l := range lines {
		if err == nil {
			_, err = w.Write(l)
		}
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		// Its container is removed next: this is the only copy.
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(s.Dir, name))
	}
	if err != nil {
		return fmt.Errorf("kept logs: %w", err)
	}
	return nil
}

type part struct {
	file string // base name
	size int64
}

// parts lists the kept parts of name, or ("") of every name, oldest first.
func (s *Store) parts(name string) ([]part, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kept logs: %w", err)
	}
	var out []part
	for _, e := range entries {
		n, _, ok := split(e.Name())
		if !ok || (name != "" && n != name) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, part{file: e.Name(), size: info.Size()})
	}
	sort.Slice(out, func(i, j int) bool {
		_, a, _ := split(out[i].file)
		_, b, _ := split(out[j].file)
		return a < b
	})
	return out, nil
}

// split takes a part's file name apart; ok is false for any other file.
func split(file string) (name, at string, ok bool) {
	base, found := strings.CutSuffix(file, suffix)
	if !found {
		return "", "", false
	}
	name, at, found = strings.Cut(base, sep)
	return name, at, found && ValidName(name) == nil
}

// prune keeps the newest MaxPerName bytes of name (cutting its oldest part
// kept short) and the newest MaxTotal bytes of all names (whole parts).
func (s *Store) prune(name string) {
	ps, err := s.parts(name)
	if err != nil {
		return
	}
	left := MaxPerName
	for i := len(ps) - 1; i >= 0; i-- {
		switch {
		case left <= 0:
			_ = os.Remove(filepath.Join(s.Dir, ps[i].file))
		case ps[i].size > left:
			s.cut(ps[i].file, left)
		}
		left -= ps[i].size
	}
	all, err := s.parts("")
	if err != nil {
		return
	}
	// What an agent that died writing a part left.
	if left, err := filepath.Glob(filepath.Join(s.Dir, ".tmp-*")); err == nil {
		for _, f := range left {
			if info, err := os.Stat(f); err == nil && time.Since(info.ModTime()) > time.Hour {
				_ = os.Remove(f)
			}
		}
	}
	var total int64
	for _, p := range all {
		total += p.size
	}
	for _, p := range all {
		if total <= MaxTotal {
			break
		}
		_ = os.Remove(filepath.Join(s.Dir, p.file))
		total -= p.size
	}
}

// cut keeps the newest lines of a part that fit in n bytes with its header.
func (s *Store) cut(file string, n int64) {
	b, err := os.ReadFile(filepath.Join(s.Dir, file))
	if err != nil {
		return
	}
	head, rest, _ := bytes.Cut(b, []byte("\n"))
	head = append(head, '\n')
	var ring lineRing
	for l := range bytes.Lines(rest) {
		ring.push(l, n-int64(len(head)))
	}
	if len(ring.lines) == 0 {
		_ = os.Remove(filepath.Join(s.Dir, file))
		return
	}
	_ = s.write(file, head, ring.lines)
}

// Read returns this node's kept lines of name that q asks for (its Since,
// Until and Tail), oldest first.
func (s *Store) Read(name string, q api.LogsQuery) ([]api.LogLine, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	if s == nil {
		return nil, nil
	}
	s.mu.Lock()
	ps, err := s.parts(name)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var out []api.LogLine
	for _, p := range ps {
		lines, err := readPart(filepath.Join(s.Dir, p.file), q)
		if errors.Is(err, os.ErrNotExist) {
			continue // pruned or dropped meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, lines...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	if q.Tail > 0 && len(out) > q.Tail {
		out = out[len(out)-q.Tail:]
	}
	return out, nil
}

func readPart(path string, q api.LogsQuery) ([]api.LogLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReader(f))
	var h header
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("kept log %s: %w", path, err)
	}
	var out []api.LogLine
	for {
		var l api.LogLine
		if err := dec.Decode(&l); err != nil {
			// A part is written whole (renamed into place): a bad line
			// is the disk's, and what came before it still counts.
			break
		}
		if (!q.Since.IsZero() && l.Time.Before(q.Since)) || (!q.Until.IsZero() && l.Time.After(q.Until)) {
			continue
		}
		l.Node = h.Node
		out = append(out, l)
	}
	return out, nil
}

// Drop removes every kept part of name: the container is gone from the
// fleet.
func (s *Store) Drop(name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, err := s.parts(name)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if err := os.Remove(filepath.Join(s.Dir, p.file)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("kept logs: %w", err)
		}
	}
	return nil
}

// lineRing holds the newest lines that fit in a number of bytes.
type lineRing struct {
	lines [][]byte
	size  int64
}

func (r *lineRing) push(l []byte, limit int64) {
	r.lines = append(r.lines, l)
	r.size += int64(len(l))
	for r.size > limit && len(r.lines) > 0 {
		r.size -= int64(len(r.lines[0]))
		r.lines = r.lines[1:]
	}
}
