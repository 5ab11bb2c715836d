package names

import (
	"strings"
	"testing"
)

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"web":                          "web",
		"Web-Server":                   "web-server",
		"web.example.com":              "web",
		"my_app 01":                    "my-app-01",
		"--x--":                        "x",
		"a..b":                         "a",
		".hidden":                      "hidden",
		"":                             "node",
		"___":                          "node",
		"héllo":                        "h-llo",
		"日本":                           "node",
		"UPPER":                        "upper",
		"a--b":                         "a-b",
		strings.Repeat("a", 70):        strings.Repeat("a", 63),
		strings.Repeat("a", 62) + "-b": strings.Repeat("a", 62),
	} {
		if got := Sanitize(in); got != want {
			t.Errorf("Sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValid(t *testing.T) {
	for s, want := range map[string]bool{
		"web": true, "web-1": true, "1": true, "": false, "-a": false, "a-": false,
		"A": false, "a_b": false, "a.b": false, strings.Repeat("x", 64): false,
	} {
		if got := Valid(s); got != want {
			t.Errorf("Valid(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestUniqueLowestFree(t *testing.T) {
	used := map[string]bool{}
	taken := func(s string) bool { return used[s] }
	var got []string
	for range 4 {
		n := Unique("web", taken)
		used[n] = true
		got = append(got, n)
	}
	if strings.Join(got, ",") != "web,web-1,web-2,web-3" {
		t.Fatalf("names = %v", got)
	}
	delete(used, "web-1")
	if n := Unique("web", taken); n != "web-1" {
		t.Fatalf("after freeing web-1: got %q, want the lowest free web-1", n)
	}
	delete(used, "web")
	if n := Unique("web", taken); n != "web" {
		t.Fatalf("after freeing web: got %q", n)
	}
}

func TestWithSuffixStaysALabel(t *testing.T) {
	base := strings.Repeat("a", 62) + "b"
	s := WithSuffix(base, 12)
	if len(s) != MaxLabel || !Valid(s) || !strings.HasSuffix(s, "-12") {
		t.Fatalf("WithSuffix = %q (len %d)", s, len(s))
	}
	s = WithSuffix(strings.Repeat("a", 60)+"-bcd", 1)
	if !Valid(s) {
		t.Fatalf("WithSuffix made an invalid label %q", s)
	}
}

func FuzzSanitize(f *testing.F) {
	for _, s := range []string{"web", "Web_Server.local", "", "-", "日本語", "\x00\xff", strings.Repeat("z-", 50)} {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, s string, n int) {
		got := Sanitize(s)
		if !Valid(got) {
			t.Fatalf("Sanitize(%q) = %q is not a valid label", s, got)
		}
		if Sanitize(got) != got {
			t.Fatalf("Sanitize is not idempotent on %q", got)
		}
		if n < 0 {
			n = -n
		}
		if n < 0 { // MinInt
			n = 1
		}
		if w := WithSuffix(got, n); !Valid(w) {
			t.Fatalf("WithSuffix(%q, %d) = %q is not a valid label", got, n, w)
		}
	})
}
