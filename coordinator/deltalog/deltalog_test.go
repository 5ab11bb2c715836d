package deltalog

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func entry(v uint64) Entry { return Entry{Version: v, Data: []byte(fmt.Sprint(v))} }

func TestReadFromCursor(t *testing.T) {
	l := New(4, 100, 1)
	if got, _, ok := l.Read(100, nil, 0); !ok || len(got) != 0 {
		t.Fatalf("empty log: %v %v", got, ok)
	}
	for v := uint64(101); v <= 103; v++ {
		l.Append(entry(v))
	}
	got, _, ok := l.Read(101, make([]Entry, 0, 8), 0)
	if !ok || len(got) != 2 || got[0].Version != 102 || got[1].Version != 103 {
		t.Fatalf("Read(101) = %v, %v", got, ok)
	}
	if _, _, ok := l.Read(104, nil, 0); ok {
		t.Fatal("a cursor from the future must resynchronise")
	}
	got, _, _ = l.Read(100, make([]Entry, 0, 1), 0)
	if len(got) != 1 || got[0].Version != 101 {
		t.Fatalf("bounded read = %v", got)
	}
}

func TestFallingBehindNeedsSnapshot(t *testing.T) {
	l := New(3, 0, 1)
	for v := uint64(1); v <= 5; v++ {
		l.Append(entry(v))
	}
	if l.Oldest() != 3 || l.Last() != 5 {
		t.Fatalf("oldest %d last %d, want 3 and 5", l.Oldest(), l.Last())
	}
	if _, _, ok := l.Read(1, nil, 0); ok {
		t.Fatal("cursor 1 is gone (entry 2 was dropped) but Read says ok")
	}
	got, _, ok := l.Read(2, make([]Entry, 0, 8), 0)
	if !ok || len(got) != 3 || string(got[0].Data) != "3" {
		t.Fatalf("Read(2) = %v %v", got, ok)
	}
}

func TestAppendOutOfOrderPanics(t *testing.T) {
	l := New(2, 0, 1)
	defer func() {
		if recover() == nil {
			t.Fatal("a version gap did not panic")
		}
	}()
	l.Append(entry(2))
}

func TestWaitWakesEveryReader(t *testing.T) {
	l := New(16, 0, 1)
	const readers = 50
	var wg sync.WaitGroup
	got := make(chan uint64, readers)
	for range readers {
		_, wait, _ := l.Read(0, nil, 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-wait:
				e, _, _ := l.Read(0, nil, 0)
				got <- e[0].Version
			case <-time.After(10 * time.Second):
				t.Error("reader not woken")
			}
		}()
	}
	l.Append(entry(1))
	wg.Wait()
	close(got)
	n := 0
	for v := range got {
		if v != 1 {
			t.Fatalf("reader saw version %d", v)
		}
		n++
	}
	if n != readers {
		t.Fatalf("%d of %d readers saw the entry", n, readers)
	}
}

func TestConcurrentAppendAndRead(t *testing.T) {
	l := New(64, 0, 1)
	const total = 2000
	done := make(chan error, 4)
	for range 4 {
		go func() {
			var cur uint64
			buf := make([]Entry, 0, 16)
			for cur < total {
				es, wait, ok := l.Read(cur, buf[:0], 0)
				if !ok {
					cur = l.Last() // resync as a stream would
					continue
				}
				for _, e := range es {
					if e.Version != cur+1 {
						done <- fmt.Errorf("gap: at %d got %d", cur, e.Version)
						return
					}
					cur = e.Version
				}
				if len(es) == 0 {
					<-wait
				}
			}
			done <- nil
		}()
	}
	for v := uint64(1); v <= total; v++ {
		l.Append(entry(v))
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestPacedWakeUps(t *testing.T) {
	const shards = 4
	l := New(64, 0, shards)
	l.SetWakeInterval(400 * time.Millisecond) // one round: a shard every 100ms
	var waits [shards]<-chan struct{}
	for i := range waits {
		_, waits[i], _ = l.Read(0, nil, i)
	}
	start := time.Now()
	l.Append(entry(1))
	l.Append(entry(2))
	var woken [shards]time.Duration
	for i, w := range waits {
		select {
		case <-w:
			woken[i] = time.Since(start)
		case <-time.After(5 * time.Second):
			t.Fatalf("shard %d never woken", i)
		}
	}
	// The first shard is woken at once; the others one step apart, in
	// order (runtime timers never fire early).
	for i := 1; i < shards; i++ {
		if woken[i] < time.Duration(i)*100*time.Millisecond {
			t.Fatalf("shard %d woken after %v, before its step at %v", i, woken[i], time.Duration(i)*100*time.Millisecond)
		}
	}
	got, _, _ := l.Read(0, make([]Entry, 0, 8), 3)
	if len(got) != 2 {
		t.Fatalf("the last shard reads both entries, got %d", len(got))
	}
}

func TestZeroIntervalWakesEveryShardAtOnce(t *testing.T) {
	l := New(8, 0, 3)
	var waits []<-chan struct{}
	for i := range 3 {
		_, w, _ := l.Read(0, nil, i)
		waits = append(waits, w)
	}
	l.Append(entry(1))
	for i, w := range waits {
		select {
		case <-w:
		default:
			t.Fatalf("shard %d not woken by the Append itself", i)
		}
	}
}
