package policy

import (
	"errors"
	"testing"
)

// FuzzParse: any document is either a policy or an *Error with a place
// inside the document; never a panic. A policy that parsed parses again
// the same from its own source.
func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"grants":[{"src":["*"],"dst":["*"],"ip":["*"]}]}`))
	f.Add([]byte("{/* c */ \"grants\": [ // x\n],}"))
	f.Add([]byte(`{"tests":[{"src":"tag:a","proto":"udp","accept":["tag:b:53"]}]}`))
	f.Add([]byte(`{"grants":[{"src":["tag:a"],"dst":["tag:b"],"ip":["tcp:1-2,3","udp:*","icmp"]}]}`))
	f.Add([]byte(`{"grants": "x"}`))
	f.Add([]byte(`["grants"]`))
	f.Add([]byte("{\"a\":\"\\\"//\"}"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := Parse(doc)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			lines := 1
			for _, c := range doc {
				if c == '\n' {
					lines++
				}
			}
			if pe.Line > lines {
				t.Fatalf("error at line %d of a %d-line document: %v", pe.Line, lines, err)
			}
			return
		}
		_ = p.RunTests()
		again, err := Parse(p.Source)
		if err != nil || len(again.Grants) != len(p.Grants) || len(again.Tests) != len(p.Tests) {
			t.Fatalf("reparse: %v", err)
		}
	})
}
