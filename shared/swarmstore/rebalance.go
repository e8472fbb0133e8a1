package swarmstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/labels"
)

// AutoRebalance is the fleet's automatic rebalance (init
// --rebalance-every): the leader's agent evens out the fleet every Every
// (0: never), at most MaxMoves live migrations each time.
type AutoRebalance struct {
	Every    time.Duration `json:"every"`
	MaxMoves int           `json:"maxMoves"`
}

// DefaultRebalanceMaxMoves is how many moves an automatic rebalance makes
// at most each time, unless init was told otherwise: a few at a time, so
// that the fleet's own work goes on beside them.
const DefaultRebalanceMaxMoves = 2

// LoadAutoRebalance reads the fleet's automatic rebalance (off unless
// init turned it on).
func LoadAutoRebalance(ctx context.Context, c client.APIClient) (AutoRebalance, error) {
	l, err := caLabels(ctx, c)
	if err != nil {
		return AutoRebalance{}, err
	}
	out := AutoRebalance{MaxMoves: DefaultRebalanceMaxMoves}
	if v, ok := l[labels.RebalanceEvery]; ok {
		if out.Every, err = time.ParseDuration(v); err != nil {
			return AutoRebalance{}, fmt.Errorf("%s=%q on %s: %w", labels.RebalanceEvery, v, labels.CAConfigName, err)
		}
	}
	if v, ok := l[labels.RebalanceMaxMoves]; ok {
		if out.MaxMoves, err = strconv.Atoi(v); err != nil {
			return AutoRebalance{}, fmt.Errorf("%s=%q on %s: %w", labels.RebalanceMaxMoves, v, labels.CAConfigName, err)
		}
	}
	return out, nil
}

// SetAutoRebalance records the fleet's automatic rebalance.
func SetAutoRebalance(ctx context.Context, c client.APIClient, a AutoRebalance) error {
	return UpdateLabels(ctx, c, labels.CAConfigName, func(l map[string]string) {
		l[labels.RebalanceEvery] = a.Every.String()
		l[labels.RebalanceMaxMoves] = strconv.Itoa(a.MaxMoves)
	})
}
