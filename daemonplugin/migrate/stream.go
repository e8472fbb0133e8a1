package migrate

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	units "github.com/docker/go-units"

	"github.com/docker-fleet/fleet/shared/agentclient"
	"github.com/docker-fleet/fleet/shared/api"
)

// stallTimeout is how long a transfer may make no progress before it is
// given up (a cut link stalls rather than fails); restoreTimeout how long,
// once every byte is sent, the destination may take to restore.
var (
	stallTimeout   = 15 * time.Second
	restoreTimeout = 45 * time.Second
)

// send streams the container to the destination, watching that the stream
// keeps moving, and returns the bytes sent and the destination's answer.
func (m *Migrator) send(ctx context.Context, peer *agentclient.Client, h api.ReceiveHeader, trees []tree, cpDir string, emit func(api.MigrateEvent)) (int64, api.ReceiveResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	pr, pw := io.Pipe()
	sum := sha256.New()
	var sent atomic.Int64
	var allSent atomic.Bool
	go func() {
		w := io.MultiWriter(pw, sum, counter{&sent})
		tw := tar.NewWriter(w)
		err := m.writeContainer(ctx, tw, trees, cpDir)
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
		allSent.Store(err == nil)
	}()

	done := make(chan struct{})
	defer close(done)
	go func() {
		last, lastAt, t0 := int64(0), time.Now(), time.Now()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			n := sent.Load()
			if allSent.Load() {
				// No bytes flow while the destination restores: a slow
				// restore is not a cut link.
				if time.Since(lastAt) > restoreTimeout {
					cancel(fmt.Errorf("the destination did not answer within %s of the last byte", restoreTimeout))
					return
				}
				continue
			}
			if n != last {
				last, lastAt = n, time.Now()
				rate := float64(n) / time.Since(t0).Seconds()
				emit(api.MigrateEvent{Phase: api.PhaseTransfer, Bytes: n,
					Message: fmt.Sprintf("%s sent (%s/s)", units.HumanSize(float64(n)), units.HumanSize(rate))})
			} else if time.Since(lastAt) > stallTimeout {
				cancel(fmt.Errorf("the transfer stalled for %s (is the link to the destination cut?)", stallTimeout))
				return
			}
		}
	}()
	got, err := peer.Receive(ctx, h, pr, func() string { return hex.EncodeToString(sum.Sum(nil)) })
	if cause := context.Cause(ctx); err != nil && cause != nil && cause != context.Canceled {
		err = cause
	}
	return sent.Load(), got, err
}

type counter struct{ n *atomic.Int64 }

func (c counter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

// writeContainer writes the writable layer, the named volumes and the CRIU
// images, each in its section.
func (m *Migrator) writeContainer(ctx context.Context, tw *tar.Writer, trees []tree, cpDir string) error {
	for i, t := range append(trees, tree{api.SectionCheckpoint, cpDir}) {
		if i == 1 {
			if err := m.fault(ctx, "source:transfer"); err != nil {
				return err
			}
		}
		if err := writeTree(tw, t.prefix, t.dir); err != nil {
			return fmt.Errorf("%s: %w", strings.TrimSuffix(t.prefix, "/"), err)
		}
	}
	return ctx.Err()
}
