// Package journal keeps a node's migrations on disk, one file each, so that
// an agent that dies in the middle of one finishes or undoes it when it
// starts again. Every write is durable before it returns (written to a
// temporary file, fsynced, renamed over the old version, directory
// fsynced): a reader sees the old version or the new one, never neither.
package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/docker-fleet/fleet/shared/api"
)

// Role is a node's side of a migration.
type Role string

const (
	Source      Role = "source"
	Destination Role = "destination"
)

// State is where a migration stands on one side (README: "The migration
// protocol" has the table of each side's states).
type State string

const (
	// Source states.
	//
	// Freezing: the container may be frozen or dumped; nothing has reached
	// the destination that it could run. Undone by a thaw.
	Freezing State = "freezing"
	// Sending: the stream runs; the destination may have restored a fenced
	// copy. Undone by a thaw after the destination is told.
	Sending State = "sending"
	// Committed: the source decided the destination's copy is the one. Its
	// own copy never runs again; the destination must learn the decision.
	Committed State = "committed"
	// Aborted: the source decided to keep its copy; it is thawed as soon as
	// its address is its own again.
	Aborted State = "aborted"

	// Destination states.
	//
	// Receiving: a twin exists, not yet restored. Removed on any doubt.
	Receiving State = "receiving"
	// Restored: the twin runs with its network locked (fenced) until the
	// source's decision comes; it never decides alone.
	Restored State = "restored"
)

// Entry is one migration as one node knows it.
type Entry struct {
	ID        string    `json:"id"`
	Role      Role      `json:"role"`
	State     State     `json:"state"`
	Container string    `json:"container"`
	Peer      string    `json:"peer"`
	PeerAddr  string    `json:"peerAddr"`
	Updated   time.Time `json:"updated"`

	Source *SourceRecord `json:"source,omitempty"`
	Dest   *DestRecord   `json:"dest,omitempty"`
}

// SourceRecord is what a source needs to thaw or end its copy.
type SourceRecord struct {
	ContainerID string `json:"containerID"`
	// CarrierID holds the container's network endpoint (itself or its
	// holder), reconnected before a thaw.
	CarrierID string   `json:"carrierID"`
	Pid       int      `json:"pid"`
	RuncRoot  string   `json:"runcRoot,omitempty"` // empty: the engine's checkpoint
	Network   string   `json:"network"`
	IP        string   `json:"ip"`
	Aliases   []string `json:"aliases,omitempty"`
	Volumes   []string `json:"volumes,omitempty"`
	// Dirs are host directories of the migration (CRIU images, work).
	Dirs []string `json:"dirs,omitempty"`
	// Restart is the container's own restart policy, held at "no" during
	// the migration and given back if it runs here again.
	Restart *RestartPolicy `json:"restart,omitempty"`
	// Extra are its endpoints on other networks than the fleet's, freed
	// with its fleet address and reconnected before a thaw.
	Extra []api.Endpoint `json:"extra,omitempty"`
	// FilesDir holds its secrets and configs (host path), removed with it.
	FilesDir string `json:"filesDir,omitempty"`
}

// Endpoints are the container's endpoints: on the fleet network first,
// then the others.
func (r SourceRecord) Endpoints() []api.Endpoint {
	return append([]api.Endpoint{{Network: r.Network, IP: r.IP, Aliases: r.Aliases}}, r.Extra...)
}

// RestartPolicy is an engine restart policy (docker's name and the
// retries of on-failure).
type RestartPolicy struct {
	Name       string `json:"name"`
	MaxRetries int    `json:"maxRetries,omitempty"`
}

// DestRecord is what a destination needs to unfence or remove its twin.
type DestRecord struct {
	TwinID   string   `json:"twinID"`
	HolderID string   `json:"holderID,omitempty"`
	Volumes  []string `json:"volumes,omitempty"` // made for the twin
	Dirs     []string `json:"dirs,omitempty"`
	// FilesDir holds the twin's secrets and configs (host path).
	FilesDir string `json:"filesDir,omitempty"`
	// Restart is the container's restart policy, which the twin (made
	// with "no") is given at the commit.
	Restart *RestartPolicy `json:"restart,omitempty"`
}

var idPattern = regexp.MustCompile(`^[a-z0-9]{8,40}$`)

// Journal is a directory of entries.
type Journal struct{ dir string }

// Open makes dir if needed, and removes what an agent that died in the
// middle of a Put left: a temporary file never renamed (one agent opens a
// journal, so no Put is under way).
func Open(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("migration journal: %w", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	for _, f := range left {
		_ = os.Remove(f)
	}
	return &Journal{dir: dir}, nil
}

// Dir is where the entries are.
func (j *Journal) Dir() string { return j.dir }

func (j *Journal) path(id string) (string, error) {
	if !idPattern.MatchString(id) {
		return "", fmt.Errorf("migration journal: bad id %q", id)
	}
	return filepath.Join(j.dir, id+".json"), nil
}

// Put writes e durably, replacing its previous version.
func (j *Journal) Put(e Entry) error {
	p, err := j.path(e.ID)
	if err != nil {
		return err
	}
	e.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(j.dir, ".tmp-"+e.ID+"-")
	if err != nil {
		return fmt.Errorf("migration journal: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err = tmp.Write(b); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err == nil {
		err = j.syncDir()
	}
	if err != nil {
		return fmt.Errorf("migration journal: %w", err)
	}
	return nil
}

// Set moves the entry id to state, keeping the rest.
func (j *Journal) Set(id string, state State) error {
	e, err := j.Get(id)
	if err != nil {
		return err
	}
	e.State = state
	return j.Put(e)
}

// Get reads one entry; a missing one is os.ErrNotExist.
func (j *Journal) Get(id string) (Entry, error) {
	p, err := j.path(id)
	if err != nil {
		return Entry{}, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return Entry{}, err
	}
	var e Entry
	if err := json.Unmarshal(b, &e); err != nil {
		return Entry{}, fmt.Errorf("migration journal %s: %w", p, err)
	}
	return e, nil
}

// List reads every entry, oldest first. An unreadable file is reported
// and skipped, not fatal: one bad entry must not stop the others' recovery.
func (j *Journal) List() ([]Entry, []error) {
	names, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, []error{err}
	}
	var out []Entry
	var errs []error
	for _, n := range names {
		id, ok := strings.CutSuffix(n.Name(), ".json")
		if !ok || strings.HasPrefix(n.Name(), ".") {
			continue
		}
		e, err := j.Get(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, e)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Updated.Before(out[b].Updated) })
	return out, errs
}

// Remove forgets a finished migration.
func (j *Journal) Remove(id string) error {
	p, err := j.path(id)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return j.syncDir()
}

func (j *Journal) syncDir() error {
	d, err := os.Open(j.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
