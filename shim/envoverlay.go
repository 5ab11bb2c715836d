package shim

import "strings"

// overlayEnv returns base with extra laid over it: a variable set in both
// keeps only extra's value, after base's other variables. Duplicates must not reach
// the child: getenv in C and Go returns the FIRST entry of a name, so an
// appended HTTP_PROXY (Prepare's) would lose to the caller's.
func overlayEnv(base, extra []string) []string {
	if len(extra) == 0 {
		return base
	}
	last := make(map[string]string, len(extra))
	for _, kv := range extra {
		k, _, _ := strings.Cut(kv, "=")
		last[k] = kv
	}
	out := make([]string, 0, len(base)+len(extra))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, over := last[k]; !over {
			out = append(out, kv)
		}
	}
	for _, kv := range extra {
		k, _, _ := strings.Cut(kv, "=")
		if last[k] == kv {
			out = append(out, kv)
			delete(last, k) // a repeated identical entry is kept once
		}
	}
	return out
}
