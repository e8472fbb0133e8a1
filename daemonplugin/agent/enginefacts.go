package agent

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
)

// engineFacts are what Info reports of the engine itself: its info and
// version. Reading them costs the engine tens of milliseconds on a busy
// host, and they change rarely (a swarm join; an engine upgrade restarts
// the agent anyway). A request that accepts an answer of some age
// (Cache-Control: max-age, as describe sends) gets the last reading if it
// is no older, and a reading in the background once it is a few seconds
// old; any other request reads them afresh.
type engineFacts struct {
	info    system.Info
	version client.ServerVersionResult
	at      time.Time
}

// factsRefresh is the age past which an answer from the last reading has
// the facts read again in the background.
const factsRefresh = 5 * time.Second

// factsCache is the last reading of the engine's facts.
type factsCache struct {
	mu         sync.Mutex
	last       engineFacts
	refreshing bool
}

// engineFacts reads the engine's facts, or gives the last reading if the
// request accepts its age.
func (a *Agent) engineFacts(ctx context.Context) (engineFacts, error) {
	c := &a.facts
	c.mu.Lock()
	last := c.last
	age := time.Since(last.at)
	usable := !last.at.IsZero() && age <= maxAgeOf(ctx)
	if usable && age > factsRefresh && !c.refreshing {
		c.refreshing = true
		go func() {
			_, _ = a.readEngineFacts(context.Background())
			c.mu.Lock()
			c.refreshing = false
			c.mu.Unlock()
		}()
	}
	c.mu.Unlock()
	if usable {
		return last, nil
	}
	return a.readEngineFacts(ctx)
}

// readEngineFacts reads the engine's facts afresh, and keeps them.
func (a *Agent) readEngineFacts(ctx context.Context) (engineFacts, error) {
	sys, err := a.engine.Info(ctx, client.InfoOptions{})
	if err != nil {
		return engineFacts{}, fmt.Errorf("engine: %w", err)
	}
	ver, err := a.engine.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return engineFacts{}, fmt.Errorf("engine: %w", err)
	}
	f := engineFacts{info: sys.Info, version: ver, at: time.Now()}
	a.facts.mu.Lock()
	if f.at.After(a.facts.last.at) {
		a.facts.last = f
	}
	a.facts.mu.Unlock()
	return f, nil
}

type maxAgeKey struct{}

// withMaxAge passes a request's Cache-Control max-age to its handler.
func withMaxAge(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for _, d := range strings.Split(r.Header.Get("Cache-Control"), ",") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(d), "max-age="); ok {
				if s, err := strconv.Atoi(v); err == nil && s > 0 {
					r = r.WithContext(context.WithValue(r.Context(), maxAgeKey{}, time.Duration(s)*time.Second))
				}
			}
		}
		h(w, r)
	}
}

// maxAgeOf is the age of an answer the request accepts (0: none).
func maxAgeOf(ctx context.Context) time.Duration {
	d, _ := ctx.Value(maxAgeKey{}).(time.Duration)
	return d
}
