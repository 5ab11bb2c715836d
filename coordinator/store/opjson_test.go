package store_test

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/coordinator/store/storetest"
	"github.com/meshinit/meshinit/meshapi"
)

// The change log carries ops as JSON: every kind comes back as written.
func TestOpJSONRoundTrip(t *testing.T) {
	key := store.KeyRecord{ID: "0123456789abcdef", Hash: [32]byte{1}, Tags: []string{"tag:a"},
		Created: time.Unix(1700000000, 5).UTC(), EphemeralTimeout: time.Minute, Uses: 2}
	node := storetest.SampleNode(7, "web", "100.64.0.7")
	node.Created, node.LastSeen, node.GCDeadline = node.Created.UTC(), node.LastSeen.UTC(), node.GCDeadline.UTC()
	ev := meshapi.Event{Seq: 3, Time: time.Unix(1700000001, 0).UTC(), Type: meshapi.EventDeleted, NodeID: 7, Name: "web", Reason: meshapi.ReasonGC}
	// A node without IPv6 (registered with no_ipv6) stays without.
	v4only := node
	v4only.ID, v4only.Name, v4only.IPv4, v4only.IPv6 = 8, "v4only", netip.MustParseAddr("100.64.0.8"), netip.Addr{}
	hb := time.Unix(1700000002, 123456000)
	ops := []store.Op{store.PutKey(key), store.PutNode(node), store.PutNode(v4only), store.DeleteNode(9), store.AddEvent(ev),
		store.SetMeta("ula", "fd00::/48"), store.RemoveReplica("0011223344556677", hb)}
	b, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	var back []store.Op
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, ops) {
		t.Fatalf("round trip:\n%+v\nwant\n%+v", back, ops)
	}
	// A takeover says which heartbeat the replica was judged dead at.
	if id, at, ok := back[len(back)-1].RemovedReplica(); !ok || id != "0011223344556677" || !at.Equal(hb) {
		t.Fatalf("removed replica %q at %v (%v), want 0011223344556677 at %v", id, at, ok, hb)
	}
	// One written before the heartbeat was recorded has none.
	var old store.Op
	if err := json.Unmarshal([]byte(`{"op":"remove_replica","name":"aa"}`), &old); err != nil {
		t.Fatal(err)
	}
	if id, at, ok := old.RemovedReplica(); !ok || id != "aa" || !at.IsZero() {
		t.Fatalf("an older takeover: %q at %v (%v)", id, at, ok)
	}
}

func TestOpJSONRefusesUnknownOrIncomplete(t *testing.T) {
	for _, in := range []string{`{"op":"drop_table"}`, `{"op":"put_node"}`, `{"op":"put_key"}`, `{"op":"add_event"}`, `[]`} {
		var o store.Op
		if err := json.Unmarshal([]byte(in), &o); err == nil {
			t.Errorf("%s accepted", in)
		} else if strings.Contains(in, "op") && !strings.Contains(err.Error(), "op") {
			t.Errorf("%s: unclear error %v", in, err)
		}
	}
}
