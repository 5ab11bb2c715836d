package relay

import (
	"bytes"
	"testing"

	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/meshapi/relayproto"
)

// A link's pending presence, however many nodes changed, goes out as
// frames of at most MaxPresenceKeys keys that carry every change once,
// and then nothing is pending.
func TestDrainPresenceSplitsAndCarriesEveryChange(t *testing.T) {
	c := &client{presence: map[meshapi.Key]bool{}}
	const here, gone = 2*relayproto.MaxPresenceKeys + 100, 7
	for i := range here + gone {
		var k meshapi.Key
		k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
		c.presence[k] = i < here
	}
	frames := c.drainPresence(nil)
	if len(frames) != 4 || len(c.presence) != 0 {
		t.Fatalf("%d frames, %d still pending; want 4 (gone, then 3 of here), none", len(frames), len(c.presence))
	}
	fr := relayproto.NewReader(bytes.NewReader(bytes.Join(frames, nil)), 0)
	seen := map[meshapi.Key]byte{}
	for range frames {
		f, err := fr.Next()
		if err != nil || f.Type != relayproto.FramePresence || len(f.Keys) > relayproto.MaxPresenceKeys {
			t.Fatalf("frame %v with %d keys: %v", f.Type, len(f.Keys), err)
		}
		for _, k := range f.Keys {
			if _, dup := seen[k]; dup {
				t.Fatalf("key %x announced twice", k[:3])
			}
			seen[k] = f.Op
		}
	}
	nHere, nGone := 0, 0
	for _, op := range seen {
		if op == relayproto.PresenceHere {
			nHere++
		} else {
			nGone++
		}
	}
	if nHere != here || nGone != gone {
		t.Fatalf("%d here, %d gone; want %d, %d", nHere, nGone, here, gone)
	}
	if more := c.drainPresence(nil); len(more) != 0 {
		t.Fatalf("%d frames from an empty queue", len(more))
	}
}
