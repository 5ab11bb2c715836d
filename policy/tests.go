package policy

import (
	"fmt"
	"strings"
)

// TestError is a test of the policy that failed: the policy would not do
// what its own tests say.
type TestError struct {
	Line     int    // where the test starts
	Src      string // the test's source
	Target   string // the destination that was wrong
	Accepted bool   // the destination was accepted but listed under deny
}

func (e *TestError) Error() string {
	if e.Accepted {
		return fmt.Sprintf("policy: line %d: test failed: %s can reach %s, but the test lists it under \"deny\"", e.Line, e.Src, e.Target)
	}
	return fmt.Sprintf("policy: line %d: test failed: %s cannot reach %s, but the test lists it under \"accept\"", e.Line, e.Src, e.Target)
}

// RunTests checks every test of the policy and returns a *TestError for
// the first that fails (by document order), or nil.
func (p *Policy) RunTests() error {
	for _, t := range p.Tests {
		src := []string{t.Src.String()}
		for _, tg := range t.Accept {
			if !p.Allows(src, []string{tg.Dst.String()}, tg.Proto, tg.Port) {
				return &TestError{Line: t.Line, Src: t.Src.String(), Target: describeTarget(tg)}
			}
		}
		for _, tg := range t.Deny {
			if p.Allows(src, []string{tg.Dst.String()}, tg.Proto, tg.Port) {
				return &TestError{Line: t.Line, Src: t.Src.String(), Target: describeTarget(tg), Accepted: true}
			}
		}
	}
	return nil
}

func describeTarget(t Target) string {
	if t.Proto == ProtoTCP {
		return t.text
	}
	return t.text + " (" + strings.ToLower(t.Proto.String()) + ")"
}

// Load parses src and runs its tests: the check every policy passes before
// it is put in force.
func Load(src []byte) (*Policy, error) {
	p, err := Parse(src)
	if err != nil {
		return nil, err
	}
	if err := p.RunTests(); err != nil {
		return nil, err
	}
	return p, nil
}
