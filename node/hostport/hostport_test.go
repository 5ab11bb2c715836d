package hostport

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	good := map[string]HostPort{
		"db:5432":                  {"db", 5432},
		"db.mesh.internal:80":      {"db.mesh.internal", 80},
		"db.mesh.internal.:80":     {"db.mesh.internal.", 80},
		"web_1:65535":              {"web_1", 65535},
		"100.64.0.7:22":            {"100.64.0.7", 22},
		"[fd7a:115c:a1e0::7]:5432": {"fd7a:115c:a1e0::7", 5432},
	}
	for in, want := range good {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	bad := map[string]string{
		"db":                           "want NAME:PORT",
		"db:":                          "not a port",
		"db:0":                         "not a port",
		"db:65536":                     "not a port",
		"db:x":                         "not a port",
		":5432":                        "no name",
		"d b:1":                        "not a valid name",
		"db..x:1":                      "not a valid name",
		"[db]:1":                       "not an IP address",
		"[fe80::1%eth0]:1":             "no zone",
		"5432:db:5432":                 "want NAME:PORT",
		strings.Repeat("a", 64) + ":1": "not a valid name",
	}
	for in, want := range bad {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) error %v, want one saying %q", in, err, want)
		}
	}
}

func TestParseListQuotesTheBadEntry(t *testing.T) {
	got, err := ParseList(" db:5432 , cache:6379 ")
	if err != nil || len(got) != 2 || got[1] != (HostPort{"cache", 6379}) {
		t.Fatalf("ParseList: %+v, %v", got, err)
	}
	if got, err := ParseList("  "); err != nil || got != nil {
		t.Fatalf("empty list: %+v, %v", got, err)
	}
	_, err = ParseList("db:5432,,cache:6379")
	if err == nil || !strings.Contains(err.Error(), `entry ""`) {
		t.Fatalf("empty entry: %v", err)
	}
	_, err = ParseList("db:5432,cache")
	if err == nil || !strings.Contains(err.Error(), `entry "cache"`) {
		t.Fatalf("bad entry not quoted: %v", err)
	}
}

func TestStringRoundTrips(t *testing.T) {
	for _, in := range []string{"db:5432", "[fd7a::7]:80", "100.64.0.1:1"} {
		hp, err := Parse(in)
		if err != nil || hp.String() != in {
			t.Errorf("Parse(%q).String() = %q, %v", in, hp.String(), err)
		}
	}
}

// FuzzParse: any input gives an entry that prints back to something Parse
// accepts as the same entry, or an error; never a panic.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"db:5432", "[fd7a::1]:80", "a.b.c.:1", ":", "[", "db:0", "x:99999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		hp, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(hp.String())
		if err != nil || again != hp {
			t.Fatalf("Parse(%q) = %+v, whose String %q parses as %+v, %v", s, hp, hp.String(), again, err)
		}
	})
}
