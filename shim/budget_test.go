package shim

import (
	"testing"
	"time"
)

func TestStopBudget(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := stopBudget{timeout: 10 * time.Second, reserve: 3 * time.Second}
	if b.started() {
		t.Fatal("budget started before any stop signal")
	}
	// Before a stop signal the hook's limit is the reserve alone.
	if got := b.hookDeadline(t0); !got.Equal(t0.Add(3 * time.Second)) {
		t.Fatalf("hookDeadline before stop = %v", got.Sub(t0))
	}
	if !b.start(t0) {
		t.Fatal("first start refused")
	}
	if b.start(t0.Add(time.Second)) {
		t.Fatal("a second stop signal moved the deadline")
	}
	if !b.deadline.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("deadline = %v after start", b.deadline.Sub(t0))
	}
	if got := b.hookStart(); !got.Equal(t0.Add(7 * time.Second)) {
		t.Fatalf("hookStart = %v, want 7s: when only the 3s reserve is left", got.Sub(t0))
	}
	// Early in the budget the reserve limits the hook; late, the deadline.
	if got := b.hookDeadline(t0.Add(time.Second)); !got.Equal(t0.Add(4 * time.Second)) {
		t.Fatalf("hookDeadline at 1s = %v, want 4s", got.Sub(t0))
	}
	if got := b.hookDeadline(t0.Add(8 * time.Second)); !got.Equal(b.deadline) {
		t.Fatalf("hookDeadline at 8s = %v, want the stop deadline", got.Sub(t0))
	}
}

func TestStopBudgetReserveLongerThanBudget(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := stopBudget{timeout: time.Second, reserve: 3 * time.Second}
	b.start(t0)
	if !b.hookStart().Before(t0) {
		t.Fatalf("hookStart = %v: with a reserve beyond the budget the hook must start at once", b.hookStart().Sub(t0))
	}
	if got := b.hookDeadline(t0); !got.Equal(t0.Add(time.Second)) {
		t.Fatalf("hookDeadline = %v, want the 1s stop deadline", got.Sub(t0))
	}
}
