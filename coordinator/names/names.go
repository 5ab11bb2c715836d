// Package names turns the hostnames nodes ask for into DNS labels that are
// unique in the mesh: Sanitize makes a valid label, Unique picks the plain
// label or the lowest free "-N" variant.
package names

import (
	"strconv"
	"strings"
)

// MaxLabel is the longest DNS label (RFC 1035).
const MaxLabel = 63

// Fallback is the name of a node whose hostname has nothing usable in it.
const Fallback = "node"

// Sanitize maps a hostname to a DNS label: ASCII letters are lowercased,
// digits kept, every other run of bytes becomes one '-', and leading or
// trailing '-' go. Only the first DNS label of a dotted hostname counts
// ("web.example.com" -> "web"), because the mesh appends its own domain.
// An empty result becomes Fallback. The result is at most MaxLabel bytes.
func Sanitize(hostname string) string {
	if i := strings.IndexByte(hostname, '.'); i > 0 {
		hostname = hostname[:i]
	}
	var b strings.Builder
	dash := false
	for i := 0; i < len(hostname) && b.Len() < MaxLabel; i++ {
		c := hostname[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
			fallthrough
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteByte(c)
		default:
			dash = true
		}
	}
	s := strings.TrimRight(b.String(), "-")
	if len(s) > MaxLabel {
		s = strings.TrimRight(s[:MaxLabel], "-")
	}
	if s == "" {
		return Fallback
	}
	return s
}

// Valid reports whether s is already a label Sanitize would keep as is:
// 1 to 63 bytes of [a-z0-9-], not starting or ending with '-'.
func Valid(s string) bool {
	return s != "" && Sanitize(s) == s
}

// WithSuffix returns base-n, shortening base so the result stays a label.
func WithSuffix(base string, n int) string {
	suffix := "-" + strconv.Itoa(n)
	if len(base)+len(suffix) > MaxLabel {
		base = strings.TrimRight(base[:MaxLabel-len(suffix)], "-")
	}
	return base + suffix
}

// Unique returns base if it is free, else the lowest free base-1, base-2, ….
// taken reports whether a label is in use.
func Unique(base string, taken func(string) bool) string {
	if !taken(base) {
		return base
	}
	for n := 1; ; n++ {
		if s := WithSuffix(base, n); !taken(s) {
			return s
		}
	}
}
