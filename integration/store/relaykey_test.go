package store_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"sync"
	"testing"

	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/integration/internal/pgtest"
)

// Replicas starting together get one relay mesh key: the first to store
// it wins and every replica reads that one, also after a reopen. It is
// 32 random bytes and not part of the change log, the events or the
// state a replica loads into memory.
func TestRelayMeshKeyIsOnePerDatabase(t *testing.T) {
	harness.Integration(t)
	ctx := context.Background()
	pg := pgtest.Shared(t)
	url := pg.NewDatabase(t)
	a, b := openReplica(t, url), openReplica(t, url)
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := st.RelayMeshKey(ctx)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	if len(keys[0]) != 32 || bytes.Equal(keys[0], make([]byte, 32)) {
		t.Fatalf("key of %d bytes: %x", len(keys[0]), keys[0])
	}
	for i, k := range keys {
		if !bytes.Equal(k, keys[0]) {
			t.Fatalf("call %d got another key", i)
		}
	}
	c := openReplica(t, url)
	if k, err := c.RelayMeshKey(ctx); err != nil || !bytes.Equal(k, keys[0]) {
		t.Fatalf("after a reopen: %x, %v", k, err)
	}
	other := openReplica(t, pg.NewDatabase(t))
	if k, _ := other.RelayMeshKey(ctx); bytes.Equal(k, keys[0]) {
		t.Fatal("another database has the same key")
	}
	if ch, err := a.ChangesAfter(ctx, 0, 100); err != nil || len(ch) != 0 {
		t.Fatalf("the key went through the change log: %d changes, %v", len(ch), err)
	}
	snap, err := c.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range snap.Meta {
		if strings.Contains(v, base64.StdEncoding.EncodeToString(keys[0])) {
			t.Fatalf("the key is loaded into the coordinator's memory as meta %q", name)
		}
	}
}
