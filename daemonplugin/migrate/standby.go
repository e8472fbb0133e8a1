package migrate

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/labels"
)

// Standby copies (warm relocation, the standby node's side): a node keeps,
// for each container the leader told it to expect (StandbyExpect), the
// newest checkpoint that reached it whole, as the stream came (header and
// tar, checked by its CRC-32C), in its own directory under the engine's
// data root. When the container's node dies, the leader has it restore
// the container from that copy (StandbyRestore): the stream goes through
// the same checks and extraction as a migration's.

// replicaName is a fleet container's name (SERVICE.N): the only names that
// become directories here.
var replicaName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,37}\.[0-9]{1,6}$`)

// standbyFree is the room a standby copy leaves on the engine's disk.
const standbyFree = 1 << 30

// standbyStore is the node's standby copies and what it expects.
type standbyStore struct {
	mu sync.Mutex
	// Dir holds one directory per container (empty: no standby copies).
	Dir     string
	expects map[string]api.StandbyExpect
}

// standbyMeta describes one copy beside its stream.
type standbyMeta struct {
	Header api.ReceiveHeader `json:"header"`
	CRC    string            `json:"crc"`
	Bytes  int64             `json:"bytes"`
	At     time.Time         `json:"at"`
}

const (
	metaFile   = "meta.json"
	streamFile = "stream.tar"
)

func (s *standbyStore) dir(name string) string { return filepath.Join(s.Dir, name) }

// markers holds the markers of containers a background checkpoint froze
// (frozenMarker); outgoing the files of checkpoints not sent yet. Both
// sit beside Dir, on the engine's disk.
func (s *standbyStore) markers() string  { return filepath.Join(filepath.Dir(s.Dir), "frozen") }
func (s *standbyStore) outgoing() string { return filepath.Join(filepath.Dir(s.Dir), "outgoing") }

// clean removes what a dead agent left half-made: copies being received
// or replaced, checkpoints not sent.
func (s *standbyStore) clean() {
	if s.Dir == "" {
		return
	}
	_ = os.RemoveAll(s.outgoing())
	entries, _ := os.ReadDir(s.Dir)
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		parts, _ := os.ReadDir(s.dir(e.Name()))
		for _, p := range parts {
			if strings.HasPrefix(p.Name(), "incoming-") || p.Name() == "old" {
				_ = os.RemoveAll(filepath.Join(s.dir(e.Name()), p.Name()))
			}
		}
	}
}

// StandbyExpect records that from will send checkpoints of container.
func (m *Migrator) StandbyExpect(_ context.Context, e api.StandbyExpect) (struct{}, error) {
	if !replicaName.MatchString(e.Container) || e.From == "" || e.From == m.Node || e.Network == "" || e.Cores < 0 || e.Memory < 0 {
		return struct{}{}, workloads.Refuse(errdefs.ErrInvalidArgument, "bad standby announcement %+v", e)
	}
	s := &m.Standby
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.expects == nil {
		s.expects = map[string]api.StandbyExpect{}
	}
	s.expects[e.Container] = e
	return struct{}{}, nil
}

// StandbyReceive keeps one checkpoint of an expected container, replacing
// the older copy once this one is whole.
func (m *Migrator) StandbyReceive(ctx context.Context, from string, h api.ReceiveHeader, body io.Reader, trailer func() string) error {
	s := &m.Standby
	s.mu.Lock()
	e, ok := s.expects[h.Name]
	s.mu.Unlock()
	if !ok || e.From != from {
		return workloads.Refuse(errdefs.ErrPermissionDenied, "node %s may not send checkpoints of %q to %s: the leader did not announce it", from, h.Name, m.Node)
	}
	if s.Dir == "" {
		return workloads.Refuse(errdefs.ErrFailedPrecondition, "node %s keeps no standby copies", m.Node)
	}
	if !migrationID.MatchString(h.ID) {
		return refuseHeader("bad checkpoint id %q", h.ID)
	}
	ann := expected{Expectation: api.Expectation{ID: h.ID, From: from, Container: e.Container, Network: e.Network, Cores: e.Cores, Memory: e.Memory,
		Privileges: e.Privileges}}
	if err := checkReceiveHeader(ann, h, m.joinable(ctx, h.Network)); err != nil {
		return err
	}
	withAnnouncedLogging(&h, e.Privileges)
	if !h.ImagesDir {
		return refuseHeader("a standby copy carries its CRIU images in its stream")
	}
	if err := os.MkdirAll(s.dir(h.Name), 0o700); err != nil {
		return err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(s.Dir, &st); err != nil {
		return err
	}
	room := min(int64(st.Bavail)*int64(st.Bsize)-standbyFree, MaxTransfer)
	if room <= 0 {
		return workloads.Refuse(errdefs.ErrResourceExhausted, "node %s has no room for standby copies", m.Node)
	}
	tmp, err := os.MkdirTemp(s.dir(h.Name), "incoming-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	f, err := os.OpenFile(filepath.Join(tmp, streamFile), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	sum := newStreamSum()
	n, err := io.Copy(io.MultiWriter(f, sum), io.LimitReader(body, room+1))
	if err == nil && n > room {
		err = workloads.Refuse(errdefs.ErrResourceExhausted, "the checkpoint of %s is larger than the room on %s", h.Name, m.Node)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("receiving a checkpoint of %s: %w", h.Name, err)
	}
	if got, want := hex.EncodeToString(sum.Sum(nil)), trailer(); got != want {
		return workloads.Refuse(errdefs.ErrInvalidArgument, "receiving a checkpoint of %s: the stream is corrupt (CRC-32C %s, the source sent %q)", h.Name, got, want)
	}
	at := h.TakenAt
	if at.IsZero() {
		at = time.Now().UTC()
	}
	meta, err := json.Marshal(standbyMeta{Header: h, CRC: trailer(), Bytes: n, At: at})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, metaFile), meta, 0o600); err != nil {
		return err
	}
	// The whole copy replaces the older one in one rename.
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.expects[h.Name]; !ok || cur.From != from {
		return workloads.Refuse(errdefs.ErrPermissionDenied, "node %s no longer sends checkpoints of %q to %s", from, h.Name, m.Node)
	}
	newest := filepath.Join(s.dir(h.Name), "newest")
	old := filepath.Join(s.dir(h.Name), "old")
	_ = os.RemoveAll(old)
	if err := os.Rename(newest, old); err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := os.Rename(tmp, newest); err != nil {
		_ = os.Rename(old, newest)
		return err
	}
	_ = os.RemoveAll(old)
	return syncDir(s.dir(h.Name))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// load reads the newest whole copy of container name.
func (s *standbyStore) load(name string) (standbyMeta, string, error) {
	var meta standbyMeta
	if s.Dir == "" || !replicaName.MatchString(name) {
		return meta, "", workloads.Refuse(errdefs.ErrNotFound, "no standby copy of %q", name)
	}
	dir := filepath.Join(s.dir(name), "newest")
	b, err := os.ReadFile(filepath.Join(dir, metaFile))
	if errors.Is(err, os.ErrNotExist) {
		return meta, "", workloads.Refuse(errdefs.ErrNotFound, "no standby copy of %q", name)
	}
	if err != nil {
		return meta, "", err
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return meta, "", fmt.Errorf("standby copy of %s: %w", name, err)
	}
	return meta, filepath.Join(dir, streamFile), nil
}

// Standbys lists the whole copies this node holds.
func (m *Migrator) Standbys() []api.StandbyCopy {
	s := &m.Standby
	if s.Dir == "" {
		return nil
	}
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		return nil
	}
	var out []api.StandbyCopy
	for _, e := range entries {
		meta, _, err := s.load(e.Name())
		if err != nil {
			continue
		}
		h := meta.Header
		out = append(out, api.StandbyCopy{Container: h.Name, From: h.From, At: meta.At, Bytes: meta.Bytes,
			Cores: h.Cores, Memory: h.Memory})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Container < out[j].Container })
	return out
}

// StandbyDrop forgets the copy of a container and that it was expected.
func (m *Migrator) StandbyDrop(_ context.Context, req api.StandbyDrop) (struct{}, error) {
	if !replicaName.MatchString(req.Container) {
		return struct{}{}, workloads.Refuse(errdefs.ErrInvalidArgument, "container: %q is not a fleet container's name", req.Container)
	}
	s := &m.Standby
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.expects, req.Container)
	if s.Dir != "" {
		if err := os.RemoveAll(s.dir(req.Container)); err != nil {
			return struct{}{}, err
		}
		log.Printf("standby: dropped the copy of %s", req.Container)
	}
	return struct{}{}, nil
}

// restoreWait bounds how long a restore waits for the host's CRIU (a
// migration or a background checkpoint): the leader asks again.
const restoreWait = 30 * time.Second

// StandbyRestore makes a dead node's container run here again from its
// newest copy: its twin made with the same address, limits and
// configuration, filled from the copy's stream and restored with CRIU.
// Its TCP connections are restored closed: their peers moved on since the
// checkpoint. A copy that fails to fill or restore is dropped (it would
// fail again: the leader then makes the container afresh); one refused
// before (no room, the address not free) stays.
func (m *Migrator) StandbyRestore(ctx context.Context, req api.StandbyRestoreRequest) (api.FleetContainer, error) {
	ctx = context.WithoutCancel(ctx)
	if !lockWithin(&m.mu, restoreWait) {
		return api.FleetContainer{}, workloads.Refuse(errdefs.ErrUnavailable, "%s cannot be restored on %s now: a migration or checkpoint holds its CRIU; try again", req.Container, m.Node)
	}
	defer m.mu.Unlock()
	// No checkpoint replaces the copy from now on: its node is dead, and
	// any that still came would be a stale copy's.
	s := &m.Standby
	s.mu.Lock()
	delete(s.expects, req.Container)
	s.mu.Unlock()
	meta, stream, err := s.load(req.Container)
	if err != nil {
		return api.FleetContainer{}, err
	}
	if needs, err := m.needsHolder(ctx); err != nil {
		return api.FleetContainer{}, err
	} else if needs {
		return api.FleetContainer{}, workloads.Refuse(errdefs.ErrFailedPrecondition,
			"%s cannot be restored on %s: its engine restores checkpoints only into a network holder, which warm relocation does not make", req.Container, m.Node)
	}
	h := meta.Header
	h.ID = newCheckpointID()
	if req.Network != "" {
		h.Network = req.Network
	}
	done, err := m.beginAlways(h.ID, h.Name)
	if err != nil {
		return api.FleetContainer{}, err
	}
	defer done()
	t0 := time.Now()
	twin, err := m.Workloads.CreateTwin(ctx, h, nil)
	if err != nil {
		return api.FleetContainer{}, err
	}
	fc, err := m.restoreStandby(ctx, h, meta, stream, twin)
	if _, derr := m.StandbyDrop(ctx, api.StandbyDrop{Container: req.Container}); derr != nil {
		log.Printf("standby: dropping the copy of %s: %v", req.Container, derr)
	}
	if err != nil {
		m.Workloads.RemoveTwin(ctx, twin)
		return api.FleetContainer{}, err
	}
	log.Printf("standby: restored %s from its checkpoint of %s (%s old) in %.2fs",
		h.Name, meta.At.Format(time.RFC3339), time.Since(meta.At).Round(time.Second), time.Since(t0).Seconds())
	return fc, nil
}

// lockWithin takes mu if it can within d.
func lockWithin(mu *sync.Mutex, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !mu.TryLock() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// restoreStandby fills twin from the copy's stream and restores it.
func (m *Migrator) restoreStandby(ctx context.Context, h api.ReceiveHeader, meta standbyMeta, stream string, twin *workloads.Twin) (api.FleetContainer, error) {
	if err := m.fault(ctx, "standby:restoring"); err != nil {
		return api.FleetContainer{}, err
	}
	f, err := os.Open(stream)
	if err != nil {
		return api.FleetContainer{}, err
	}
	defer f.Close()
	imgDir := m.workDir(h.ID, "-in")
	defer m.removeDirs(imgDir)
	e := expected{limit: meta.Bytes + maxPadding}
	if _, err := m.fill(ctx, e, h, twin, imgDir, f, func() string { return meta.CRC }); err != nil {
		return api.FleetContainer{}, err
	}
	if err := m.restore(ctx, twin.ID, h.Name, true, imgDir, "tcp-close"); err != nil {
		return api.FleetContainer{}, fmt.Errorf("restoring %s on %s: %w", h.Name, m.Node, err)
	}
	// Its node is dead and this copy the only one: kept, whatever its
	// sysctls, and the container from now on.
	m.resumeSysctls(ctx, twin.ID, h.Name)
	m.takeRestart(ctx, twin.ID, h.Name, restartOf(h.HostConfig))
	return api.FleetContainer{ID: twin.ID, Name: h.Name, Node: m.Node, Cpuset: twin.Cpuset, IP: h.IP, State: "running",
		Service: h.Config.Labels[labels.Service]}, nil
}
