package spec

// Orders and failure actions of an update (docker service update's
// --update-order and --update-failure-action).
const (
	OrderStopFirst  = "stop-first"
	OrderStartFirst = "start-first"
	ActionRollback  = "rollback"
	ActionPause     = "pause"
)

// UpdateConfig is how the service's updates roll by default (Compose's
// deploy.update_config); docker fleet update's --update-* flags override
// it for one update.
type UpdateConfig struct {
	Parallelism   int      `json:"parallelism,omitempty"`
	Delay         Duration `json:"delay,omitempty"`
	Monitor       Duration `json:"monitor,omitempty"`
	Order         string   `json:"order,omitempty"`
	FailureAction string   `json:"failureAction,omitempty"`
}

func (u *UpdateConfig) validate() []error {
	if u == nil {
		return nil
	}
	var errs []error
	if u.Parallelism < 0 {
		errs = append(errs, fieldErr("update_config.parallelism", "%d: at least 1, or 0 for the default (1)", u.Parallelism))
	}
	if u.Delay < 0 || u.Monitor < 0 {
		errs = append(errs, fieldErr("update_config", "delay and monitor are not negative"))
	}
	switch u.Order {
	case "", OrderStopFirst, OrderStartFirst:
	default:
		errs = append(errs, fieldErr("update_config.order", "%q: use %s or %s", u.Order, OrderStopFirst, OrderStartFirst))
	}
	switch u.FailureAction {
	case "", ActionRollback, ActionPause:
	case "continue":
		errs = append(errs, fieldErr("update_config.failure_action", "continue: not supported by docker fleet: it would leave replicas on two definitions with one not running; use %s or %s", ActionRollback, ActionPause))
	default:
		errs = append(errs, fieldErr("update_config.failure_action", "%q: use %s or %s", u.FailureAction, ActionRollback, ActionPause))
	}
	return errs
}
