package policy

import (
	"fmt"
	"slices"
	"strings"
)

// Selector names nodes: every node ("*") or the nodes carrying one tag.
type Selector struct {
	tag string // "" for "*"
}

// ParseSelector reads "*" or "tag:NAME" (NAME: lowercase letters, digits
// and '-', as auth keys' tags).
func ParseSelector(s string) (Selector, error) {
	if s == "*" {
		return Selector{}, nil
	}
	name, ok := strings.CutPrefix(s, "tag:")
	if !ok || !ValidTagName(name) {
		return Selector{}, fmt.Errorf("%q: want \"*\" or tag:NAME with a name of lowercase letters, digits and '-' (users, groups, hosts and addresses are not supported: tags come from auth keys)", s)
	}
	return Selector{tag: s}, nil
}

// MustSelector is ParseSelector for literals; it panics on error.
func MustSelector(s string) Selector {
	sel, err := ParseSelector(s)
	if err != nil {
		panic(err)
	}
	return sel
}

// Any reports whether the selector is "*".
func (s Selector) Any() bool { return s.tag == "" }

func (s Selector) String() string {
	if s.tag == "" {
		return "*"
	}
	return s.tag
}

// Matches reports whether a node with tags (each "tag:NAME") is selected.
// "*" selects every node, tagged or not.
func (s Selector) Matches(tags []string) bool {
	return s.tag == "" || slices.Contains(tags, s.tag)
}

// matchesAny reports whether any of sels matches tags.
func matchesAny(sels []Selector, tags []string) bool {
	for _, s := range sels {
		if s.Matches(tags) {
			return true
		}
	}
	return false
}

// ValidTagName reports whether name (after "tag:") is 1 to 63 lowercase
// letters, digits and '-', not starting or ending with '-'.
func ValidTagName(name string) bool {
	if name == "" || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
