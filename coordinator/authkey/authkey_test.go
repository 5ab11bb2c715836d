package authkey

import (
	"errors"
	"strings"
	"testing"
)

func TestNewParseRoundTrip(t *testing.T) {
	k, err := New()
	if err != nil {
		t.Fatal(err)
	}
	full := k.String()
	if !strings.HasPrefix(full, "mkey-"+k.ID+"-") {
		t.Fatalf("key %q does not carry its id %q", full, k.ID)
	}
	p, err := Parse(full)
	if err != nil {
		t.Fatalf("Parse(New()): %v", err)
	}
	if p.ID != k.ID || !p.Matches(k.Hash()) {
		t.Fatal("parsed key does not match the key it came from")
	}
	other, _ := New()
	if other.Matches(k.Hash()) {
		t.Fatal("a different key matches")
	}
	if !ValidID(k.ID) {
		t.Fatal("ValidID rejects a generated id")
	}
}

func TestParseRefusals(t *testing.T) {
	good, _ := New()
	full := good.String()
	for name, in := range map[string]string{
		"empty":         "",
		"wrong prefix":  "tskey-" + full[5:],
		"no secret":     "mkey-" + good.ID,
		"short id":      "mkey-abc-" + strings.Repeat("a", 64),
		"upper hex":     strings.ToUpper(full),
		"short secret":  full[:len(full)-1],
		"long secret":   full + "0",
		"non-hex":       full[:len(full)-1] + "g",
		"doubled":       full + full,
		"extra segment": full + "-00",
	} {
		_, err := Parse(in)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Parse(%q) = %v, want ErrMalformed", name, in, err)
			continue
		}
		if len(in) > 30 && strings.Contains(err.Error(), in[len(in)-20:]) {
			t.Errorf("%s: error repeats the secret: %v", name, err)
		}
	}
}

func TestNodeSecret(t *testing.T) {
	s, h := NewNodeSecret()
	got, err := ParseNodeSecret(s)
	if err != nil || got != h {
		t.Fatalf("ParseNodeSecret(NewNodeSecret()) = %x, %v; want %x", got, err, h)
	}
	for _, bad := range []string{"", "mnode-", s + "0", "mkey-" + s[6:], strings.ToUpper(s)} {
		if _, err := ParseNodeSecret(bad); err == nil {
			t.Errorf("ParseNodeSecret(%q) accepted", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	k, _ := New()
	f.Add(k.String())
	f.Add("")
	f.Add("mkey-")
	f.Add("mkey-0123456789abcdef-")
	f.Add("mkey-0123456789abcdef-" + strings.Repeat("f", 64))
	f.Add("mnode-" + strings.Repeat("0", 64))
	f.Add(" \tmkey-\x00")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		// Whatever parses must print back to the same key.
		if p.String() != strings.TrimSpace(s) {
			t.Fatalf("Parse(%q).String() = %q", s, p.String())
		}
		if !ValidID(p.ID) {
			t.Fatalf("parsed id %q is not valid", p.ID)
		}
	})
}

func FuzzParseNodeSecret(f *testing.F) {
	s, _ := NewNodeSecret()
	f.Add(s)
	f.Add("mnode-")
	f.Add("Bearer " + s)
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseNodeSecret(s)
		if err == nil && h != sum(s[len(secretPrefix):]) {
			t.Fatal("hash is not the hash of the secret part")
		}
	})
}
