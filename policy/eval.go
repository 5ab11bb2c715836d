package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

// Allows reports whether a node tagged src may open a flow of proto to
// port on a node tagged dst. A nil policy allows everything.
func (p *Policy) Allows(src, dst []string, proto Proto, port uint16) bool {
	if p == nil {
		return true
	}
	for i := range p.Grants {
		g := &p.Grants[i]
		if !matchesAny(g.Src, src) || !matchesAny(g.Dst, dst) {
			continue
		}
		for _, r := range g.IP {
			if r.Contains(proto, port) {
				return true
			}
		}
	}
	return false
}

// Reaches reports whether some grant lets a node tagged src open any flow
// to a node tagged dst.
func (p *Policy) Reaches(src, dst []string) bool {
	if p == nil {
		return true
	}
	for i := range p.Grants {
		if matchesAny(p.Grants[i].Src, src) && matchesAny(p.Grants[i].Dst, dst) {
			return true
		}
	}
	return false
}

// Visible reports whether nodes tagged a and b belong in each other's maps:
// either may open flows to the other.
func (p *Policy) Visible(a, b []string) bool {
	return p.Reaches(a, b) || p.Reaches(b, a)
}

// Rule is one inbound rule for a node: flows from nodes matching any of
// Src may open the ports in IP.
type Rule struct {
	Src []Selector
	IP  []PortRange
}

// InboundRules returns the rules that apply to flows arriving at a node
// tagged dst: the grants whose dst matches it, without their dst. nil for a
// nil policy (allow all); an empty, non-nil list denies all.
func (p *Policy) InboundRules(dst []string) []Rule {
	if p == nil {
		return nil
	}
	rules := []Rule{}
	for i := range p.Grants {
		g := &p.Grants[i]
		if matchesAny(g.Dst, dst) {
			rules = append(rules, Rule{Src: g.Src, IP: g.IP})
		}
	}
	return rules
}

// RuleAllows reports whether rules let a source tagged src open a flow of
// proto to port. This is the node's question; nil rules allow all.
func RuleAllows(rules []Rule, src []string, proto Proto, port uint16) bool {
	if rules == nil {
		return true
	}
	for _, r := range rules {
		if !matchesAny(r.Src, src) {
			continue
		}
		for _, pr := range r.IP {
			if pr.Contains(proto, port) {
				return true
			}
		}
	}
	return false
}

// Hash identifies the policy's source text (sha256, hex, 16 digits).
func (p *Policy) Hash() string {
	if p == nil {
		return ""
	}
	sum := sha256.Sum256(p.Source)
	return hex.EncodeToString(sum[:8])
}

// TagSetKey is a canonical string for a set of tags (sorted, deduplicated,
// comma-joined): nodes with the same key are treated alike by any policy.
func TagSetKey(tags []string) string {
	if len(tags) == 0 {
		return ""
	}
	s := slices.Clone(tags)
	slices.Sort(s)
	return strings.Join(slices.Compact(s), ",")
}

// ParseRule reads an inbound rule as it travels to nodes (selectors and
// port specs as strings).
func ParseRule(src, ip []string) (Rule, error) {
	var r Rule
	var err error
	if r.Src, err = parseSelectors("src", src); err != nil {
		return Rule{}, err
	}
	for _, spec := range ip {
		prs, err := ParsePortSpec(spec)
		if err != nil {
			return Rule{}, err
		}
		r.IP = append(r.IP, prs...)
	}
	return r, nil
}

// Strings returns the rule's selectors and port specs as ParseRule reads
// them.
func (r Rule) Strings() (src, ip []string) {
	for _, s := range r.Src {
		src = append(src, s.String())
	}
	for _, p := range r.IP {
		ip = append(ip, p.String())
	}
	return src, ip
}
