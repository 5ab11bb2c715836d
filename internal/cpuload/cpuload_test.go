package cpuload

import (
	"testing"
	"time"
)

func TestCountersMove(t *testing.T) {
	w := Start()
	b0, s0 := MachineBusy(), Self(false)
	if b0 <= 0 {
		t.Fatalf("MachineBusy = %v, want the machine's busy time since boot", b0)
	}
	deadline := time.Now().Add(5 * time.Second)
	x := 0
	for Self(false)-s0 < 50*time.Millisecond && time.Now().Before(deadline) { // bounded busy loop
		for i := range 1_000_000 {
			x += i
		}
	}
	if Self(false)-s0 < 20*time.Millisecond || MachineBusy() < b0 {
		t.Errorf("after a busy loop (%d): self CPU %v, machine busy %v -> %v", x, Self(false)-s0, b0, MachineBusy())
	}
	if o := w.Others(); o < 0 {
		t.Errorf("Others = %v, want >= 0", o)
	}
}
