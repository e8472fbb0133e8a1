package swarmstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/labels"
	"github.com/docker-fleet/fleet/shared/spec"
)

// ErrServiceExists and ErrNoService are the store's refusals.
var (
	ErrServiceExists = errors.New("service already exists")
	ErrNoService     = errors.New("no such service")
)

// Service definitions live in swarm configs (the raft store), one per
// service: the definition in the data, which is immutable, and the desired
// replica count in a label, which scale may change.

func serviceConfig(name string) string { return labels.ServiceConfigPrefix + name }

// SaveService stores a new service definition.
func SaveService(ctx context.Context, c client.APIClient, s spec.Service) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = c.ConfigCreate(ctx, client.ConfigCreateOptions{Spec: swarm.ConfigSpec{
		Annotations: swarm.Annotations{Name: serviceConfig(s.Name), Labels: map[string]string{
			labels.Service:  s.Name,
			labels.Replicas: strconv.Itoa(s.Replicas),
		}},
		Data: data,
	}})
	if errdefs.IsConflict(err) {
		return fmt.Errorf("service %s: %w", s.Name, ErrServiceExists)
	}
	return err
}

// LoadService reads a service definition with its desired replicas.
func LoadService(ctx context.Context, c client.APIClient, name string) (spec.Service, error) {
	res, err := c.ConfigInspect(ctx, serviceConfig(name), client.ConfigInspectOptions{})
	if errdefs.IsNotFound(err) {
		return spec.Service{}, fmt.Errorf("service %s: %w", name, ErrNoService)
	}
	if err != nil {
		return spec.Service{}, err
	}
	return decodeService(res.Config)
}

// ListServices reads every stored service, sorted by name.
func ListServices(ctx context.Context, c client.APIClient) ([]spec.Service, error) {
	cfgs, err := inspectAll(ctx, c, labels.Service)
	if err != nil {
		return nil, err
	}
	var out []spec.Service
	for _, cfg := range cfgs {
		s, err := decodeService(cfg)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// inspectAll reads every config carrying label (a "key" or "key=value"
// filter), whole: the list leaves the data out on some engines, so each
// is inspected.
func inspectAll(ctx context.Context, c client.APIClient, label string) ([]swarm.Config, error) {
	res, err := c.ConfigList(ctx, client.ConfigListOptions{Filters: make(client.Filters).Add("label", label)})
	if err != nil {
		return nil, err
	}
	out := make([]swarm.Config, 0, len(res.Items))
	for _, cfg := range res.Items {
		full, err := c.ConfigInspect(ctx, cfg.ID, client.ConfigInspectOptions{})
		if err != nil {
			return nil, err
		}
		out = append(out, full.Config)
	}
	return out, nil
}

// SetReplicas records a service's desired replica count.
func SetReplicas(ctx context.Context, c client.APIClient, name string, n int) error {
	return UpdateLabels(ctx, c, serviceConfig(name), func(l map[string]string) { l[labels.Replicas] = strconv.Itoa(n) })
}

// AddReplicas adds n to a service's desired replica count, in one
// versioned update.
func AddReplicas(ctx context.Context, c client.APIClient, name string, n int) error {
	return UpdateLabels(ctx, c, serviceConfig(name), func(l map[string]string) {
		cur, _ := strconv.Atoi(l[labels.Replicas])
		l[labels.Replicas] = strconv.Itoa(cur + n)
	})
}

// ReplaceService stores a changed definition in place of the old one, and
// prev as its previous (what --rollback restores), in one update of the
// config's labels (labels.Content): readers see the old definition or the
// new one, never none.
func ReplaceService(ctx context.Context, c client.APIClient, s, prev spec.Service) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	prevData, err := json.Marshal(prev)
	if err != nil {
		return err
	}
	// The replica count is scale's: a concurrent scale keeps its word.
	return UpdateLabels(ctx, c, serviceConfig(s.Name), func(l map[string]string) {
		l[labels.Content], l[labels.Previous] = string(data), string(prevData)
	})
}

// UpdateLabels changes a config's labels with change, retrying when
// another writer updated it meanwhile (the update names the version read).
func UpdateLabels(ctx context.Context, c client.APIClient, name string, change func(map[string]string)) error {
	return updateLabelsIf(ctx, c, name, func(l map[string]string) error { change(l); return nil })
}

// updateLabelsIf is UpdateLabels with a change that may refuse, on the
// version it read: its error is returned and nothing is written.
func updateLabelsIf(ctx context.Context, c client.APIClient, name string, change func(map[string]string) error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var res client.ConfigInspectResult
		if res, err = c.ConfigInspect(ctx, name, client.ConfigInspectOptions{}); err != nil {
			return err
		}
		spec := res.Config.Spec
		if spec.Labels == nil {
			spec.Labels = map[string]string{}
		}
		if err := change(spec.Labels); err != nil {
			return err
		}
		_, err = c.ConfigUpdate(ctx, res.Config.ID, client.ConfigUpdateOptions{Version: res.Config.Version, Spec: spec})
		// The swarm refuses an update of a version that moved on ("update
		// out of sequence") as a conflict or an internal error, by engine.
		if err == nil || !errdefs.IsConflict(err) && !errdefs.IsUnknown(err) && !errdefs.IsInternal(err) {
			return err
		}
	}
	return err
}

// Content is a stored config's newest version: its labels.Content, or
// its data when it was never changed.
func Content(cfg swarm.Config) []byte {
	if v, ok := cfg.Spec.Labels[labels.Content]; ok {
		return []byte(v)
	}
	return cfg.Spec.Data
}

// DeleteService forgets a service definition; a missing one is fine.
func DeleteService(ctx context.Context, c client.APIClient, name string) error {
	return removeConfig(ctx, c, serviceConfig(name))
}

func decodeService(cfg swarm.Config) (spec.Service, error) {
	var s spec.Service
	if err := json.Unmarshal(Content(cfg), &s); err != nil {
		return s, fmt.Errorf("swarm config %s: %w", cfg.Spec.Name, err)
	}
	if n, err := strconv.Atoi(cfg.Spec.Labels[labels.Replicas]); err == nil {
		s.Replicas = n
	}
	return s, nil
}
