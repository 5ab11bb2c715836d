package meshapi

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseKeyRoundTrip(t *testing.T) {
	var k Key
	for i := range k {
		k[i] = byte(i * 7)
	}
	s := k.String()
	got, err := ParseKey(s)
	if err != nil {
		t.Fatalf("ParseKey(%q): %v", s, err)
	}
	if got != k {
		t.Fatalf("round trip: got %v, want %v", got, k)
	}
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	var back Key
	if err := json.Unmarshal(b, &back); err != nil || back != k {
		t.Fatalf("JSON round trip: %v, %v", back, err)
	}
}

func TestParseKeyRejects(t *testing.T) {
	for _, s := range []string{
		"",
		"short",
		strings.Repeat("A", 43) + "!",  // not base64
		strings.Repeat("A", 42) + "B=", // non-canonical padding bits (strict)
		strings.Repeat("A", 45),        // too long
		strings.Repeat("A", 44) + "\n", // trailing newline
		strings.Repeat("\u00e9", 22),   // 44 bytes of non-ASCII
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", // 31 bytes
	} {
		if _, err := ParseKey(s); err == nil {
			t.Errorf("ParseKey(%q) accepted a bad key", s)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add("")
	f.Add(Key{1, 2, 3}.String())
	f.Add(strings.Repeat("A", 43) + "=")
	f.Add(strings.Repeat("/", 44))
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			return
		}
		// Whatever parses must print back to exactly the input: one key, one spelling.
		if k.String() != s {
			t.Fatalf("ParseKey(%q) = %q: not canonical", s, k.String())
		}
	})
}
