package swarmstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/spec"
)

// States of an update (Update.State).
const (
	UpdateRolling     = "updating"
	UpdatePaused      = "paused"
	UpdateRollingBack = "rolling_back"
	UpdateRolledBack  = "rolled_back"
	UpdateCompleted   = "completed"
)

// Update is where a service's newest update stands, kept beside its
// definition so that an update outlives the CLI that started it: another
// `docker fleet update` resumes it, `--rollback` undoes it.
type Update struct {
	State string `json:"state"`
	// From and To are the revisions it goes between (spec.Service.Revision).
	From int `json:"from"`
	To   int `json:"to"`
	// How it rolls (docker service update's --update-* flags).
	spec.UpdateConfig
	// Reason says why it paused or rolled back.
	Reason string `json:"reason,omitempty"`
	// PausedFrom is the state a paused update goes on in (updating, or
	// rolling_back: a rollback that failed is tried again, never rolled
	// back itself).
	PausedFrom string `json:"pausedFrom,omitempty"`
	// Restore is the previous definition to keep if the update is rolled
	// back by itself: the service is then as it was before the update.
	Restore   *spec.Service `json:"restore,omitempty"`
	StartedAt string        `json:"startedAt,omitempty"`
	EndedAt   string        `json:"endedAt,omitempty"`
}

// Running says whether the update still has replicas to replace: until it
// ends, nothing else may change the service's replicas.
func (u *Update) Running() bool {
	return u != nil && (u.State == UpdateRolling || u.State == UpdateRollingBack || u.State == UpdatePaused)
}

// ErrUpdateRunning refuses a change to a service while an update of it
// has not ended.
var ErrUpdateRunning = errors.New("an update of it has not ended")

// ServiceState is a stored service with its update record.
type ServiceState struct {
	Service spec.Service
	// Previous is the definition before the newest update (nil: never
	// updated).
	Previous *spec.Service
	Update   *Update
}

// LoadServiceState reads a service's definition, the one before it and
// its update record.
func LoadServiceState(ctx context.Context, c client.APIClient, name string) (ServiceState, error) {
	res, err := c.ConfigInspect(ctx, serviceConfig(name), client.ConfigInspectOptions{})
	if errdefs.IsNotFound(err) {
		return ServiceState{}, fmt.Errorf("service %s: %w", name, ErrNoService)
	}
	if err != nil {
		return ServiceState{}, err
	}
	s, err := decodeService(res.Config)
	if err != nil {
		return ServiceState{}, err
	}
	st := ServiceState{Service: s}
	l := res.Config.Spec.Labels
	if v := l[labels.Previous]; v != "" {
		var p spec.Service
		if err := json.Unmarshal([]byte(v), &p); err != nil {
			return st, fmt.Errorf("the previous definition of %s: %w", name, err)
		}
		p.Replicas = s.Replicas
		st.Previous = &p
	}
	if v := l[labels.Update]; v != "" {
		var u Update
		if err := json.Unmarshal([]byte(v), &u); err != nil {
			return st, fmt.Errorf("the update record of %s: %w", name, err)
		}
		st.Update = &u
	}
	return st, nil
}

// StartUpdate stores next as the service's definition, prev as its
// previous (nil: none), and u as its update record, in one versioned change:
// refused (ErrUpdateRunning) if another update began meanwhile and has
// not ended, unless it is the one being resumed (same To) or paused (a new
// update supersedes it).
func StartUpdate(ctx context.Context, c client.APIClient, prev *spec.Service, next spec.Service, u Update) error {
	var prevData []byte
	if prev != nil {
		var err error
		if prevData, err = json.Marshal(prev); err != nil {
			return err
		}
	}
	nextData, err := json.Marshal(next)
	if err != nil {
		return err
	}
	rec, err := json.Marshal(u)
	if err != nil {
		return err
	}
	return updateLabelsIf(ctx, c, serviceConfig(next.Name), func(l map[string]string) error {
		if v := l[labels.Update]; v != "" {
			var cur Update
			if json.Unmarshal([]byte(v), &cur) == nil && cur.Running() && cur.State != UpdatePaused && cur.To != u.To && cur.To != u.From {
				return fmt.Errorf("service %s: %w (%s to revision %d)", next.Name, ErrUpdateRunning, cur.State, cur.To)
			}
		}
		l[labels.Content], l[labels.Update] = string(nextData), string(rec)
		if prev == nil {
			delete(l, labels.Previous)
		} else {
			l[labels.Previous] = string(prevData)
		}
		return nil
	})
}

// SetUpdate records where a service's update stands.
func SetUpdate(ctx context.Context, c client.APIClient, name string, u Update) error {
	rec, err := json.Marshal(u)
	if err != nil {
		return err
	}
	return UpdateLabels(ctx, c, serviceConfig(name), func(l map[string]string) { l[labels.Update] = string(rec) })
}
