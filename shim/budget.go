package shim

import "time"

// stopBudget is the time docker (or Kubernetes) gives a container between
// the stop signal and SIGKILL. It starts at the first stop signal and never
// moves: later signals do not extend it.
type stopBudget struct {
	timeout  time.Duration // the whole budget (MESH_STOP_TIMEOUT)
	reserve  time.Duration // the part kept for BeforeExit (MESH_LOGOUT_TIMEOUT)
	deadline time.Time     // zero until the first stop signal
}

func (b *stopBudget) started() bool { return !b.deadline.IsZero() }

// start begins the budget at now; it reports false if it had already begun.
func (b *stopBudget) start(now time.Time) bool {
	if b.started() {
		return false
	}
	b.deadline = now.Add(b.timeout)
	return true
}

// hookStart is the latest moment BeforeExit may begin while the child still
// runs: when only the reserve is left. A reserve as long as the whole budget
// means at once.
func (b *stopBudget) hookStart() time.Time {
	return b.deadline.Add(-b.reserve)
}

// hookDeadline is the limit given to a BeforeExit that starts at now: its
// reserve, but never past the stop deadline.
func (b *stopBudget) hookDeadline(now time.Time) time.Time {
	d := now.Add(b.reserve)
	if b.started() && b.deadline.Before(d) {
		return b.deadline
	}
	return d
}
