package controlclient

import (
	"testing"
	"time"
)

func TestBackoffGrowsJitteredAndCaps(t *testing.T) {
	b := Backoff{Min: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	ceilings := []time.Duration{10, 20, 40, 80, 80, 80}
	for i, c := range ceilings {
		c *= time.Millisecond
		d := b.Next()
		if d < c/2 || d > c {
			t.Fatalf("attempt %d: delay %v outside [%v, %v]", i, d, c/2, c)
		}
	}
	b.Reset()
	if d := b.Next(); d > 10*time.Millisecond {
		t.Fatalf("after Reset: %v, want at most Min", d)
	}
}

func TestBackoffJitterSpreads(t *testing.T) {
	seen := map[time.Duration]bool{}
	for range 50 {
		b := Backoff{Min: time.Second}
		seen[b.Next()] = true
	}
	if len(seen) < 10 {
		t.Fatalf("50 first delays took only %d values: no jitter", len(seen))
	}
}
