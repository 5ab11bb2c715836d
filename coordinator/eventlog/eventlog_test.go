package eventlog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator/eventlog"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

type buffer struct{ bytes.Buffer }

func (b *buffer) Flush() error { return nil }

func (b *buffer) seqs(t *testing.T) []uint64 {
	var out []uint64
	dec := json.NewDecoder(&b.Buffer)
	for dec.More() {
		var e meshapi.Event
		if err := dec.Decode(&e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Seq)
	}
	return out
}

var t0 = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

// TestCopyFromMemoryAndStore: a follower gets every event after since, the
// older ones read back from the store, the recent ones from memory, and
// nothing that retention deleted.
func TestCopyFromMemoryAndStore(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "e.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var heard []uint64
	l := eventlog.New(st, 0, 4, func(e meshapi.Event) { heard = append(heard, e.Seq) }) // 4 in memory
	var ops []store.Op
	for seq := uint64(1); seq <= 10; seq++ {
		ops = append(ops, store.AddEvent(meshapi.Event{Seq: seq, Time: t0.Add(time.Duration(seq) * time.Minute), Type: meshapi.EventOnline}))
	}
	ops = append(ops, store.SetMeta("x", "y")) // not an event: ignored
	if err := st.Apply(ctx, ops); err != nil {
		t.Fatal(err)
	}
	l.Publish(ops)
	if len(heard) != 10 || l.Last() != 10 {
		t.Fatalf("heard %v, last %d", heard, l.Last())
	}
	var b buffer
	if err := l.Copy(ctx, 2, false, nil, &b); err != nil {
		t.Fatal(err)
	}
	if got := b.seqs(t); len(got) != 8 || got[0] != 3 || got[7] != 10 {
		t.Fatalf("since 2: %v, want 3..10", got)
	}
	// Events before minute 9 go; 7 and 8 were still in memory.
	if err := l.Prune(ctx, t0.Add(9*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := l.Copy(ctx, 0, false, nil, &b); err != nil {
		t.Fatal(err)
	}
	if got := b.seqs(t); len(got) != 2 || got[0] != 9 {
		t.Fatalf("after pruning: %v, want 9, 10", got)
	}
}

// TestFollowWaitsForNewEvents: with follow, Copy sends new events as they
// are published and returns when told to stop.
func TestFollowWaitsForNewEvents(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "e.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l := eventlog.New(st, 41, 16, nil) // a database whose last event is 41
	stop := make(chan struct{})
	lines := make(chan []byte, 4)
	done := make(chan error, 1)
	go func() { done <- l.Copy(ctx, 41, true, stop, chanWriter(lines)) }()
	l.Publish([]store.Op{store.AddEvent(meshapi.Event{Seq: 42, Time: t0, Type: meshapi.EventOffline})})
	select {
	case line := <-lines:
		var e meshapi.Event
		if err := json.Unmarshal(line, &e); err != nil || e.Seq != 42 {
			t.Fatalf("followed %q, %v", line, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the follower did not get the new event")
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type chanWriter chan []byte

func (c chanWriter) Write(p []byte) (int, error) {
	c <- bytes.Clone(p)
	return len(p), nil
}

func (c chanWriter) Flush() error { return nil }
