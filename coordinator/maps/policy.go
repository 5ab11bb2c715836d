package maps

import (
	"sync"
	"sync/atomic"

	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/policy"
)

// The access policy, coordinator side: which nodes see each other in their
// maps (B is in A's map iff A may open flows to B or B to A), and each
// node's inbound rules. Nodes are grouped into tag classes (nodes with the
// same set of tags are alike to any policy), so visibility is a relation
// between a few classes, computed once per pair and policy, not per node.

// classID names a set of tags; 0 means "not assigned yet".
type classID uint32

// classTable interns tag sets. Interning happens under Log.mu; lookups by
// id are lock-free (map streams do them).
type classTable struct {
	byKey map[string]classID         // guarded by Log.mu
	tags  atomic.Pointer[[][]string] // id-1 → tags; replaced on append
}

func newClassTable() *classTable {
	t := &classTable{byKey: map[string]classID{}}
	t.tags.Store(&[][]string{})
	return t
}

// internLocked returns the class of tags, creating it if new.
func (t *classTable) internLocked(tags []string) classID {
	k := policy.TagSetKey(tags)
	if c, ok := t.byKey[k]; ok {
		return c
	}
	old := *t.tags.Load()
	next := append(old[:len(old):len(old)], append([]string(nil), tags...))
	t.tags.Store(&next)
	c := classID(len(next))
	t.byKey[k] = c
	return c
}

func (t *classTable) tagsOf(c classID) []string { return (*t.tags.Load())[c-1] }

// visibility is one policy's answers, cached per class pair. It is
// immutable but for its caches, and shared by every stream that is at a
// version where the policy was in force.
type visibility struct {
	p       *policy.Policy // nil: no policy, everyone sees everyone
	version uint64
	classes *classTable
	seen    sync.Map // uint64(a)<<32|b → bool
	rules   sync.Map // classID → *meshapi.NodePolicy
}

func newVisibility(p *policy.Policy, version uint64, classes *classTable) *visibility {
	return &visibility{p: p, version: version, classes: classes}
}

// sees reports whether nodes of class a have nodes of class b in their map.
func (v *visibility) sees(a, b classID) bool {
	if v.p == nil {
		return true
	}
	k := uint64(a)<<32 | uint64(b)
	if r, ok := v.seen.Load(k); ok {
		return r.(bool)
	}
	r := v.p.Visible(v.classes.tagsOf(a), v.classes.tagsOf(b))
	v.seen.Store(k, r)
	return r
}

// nodePolicy is what nodes of class c enforce (nil without a policy).
func (v *visibility) nodePolicy(c classID) *meshapi.NodePolicy {
	if v.p == nil {
		return nil
	}
	if np, ok := v.rules.Load(c); ok {
		return np.(*meshapi.NodePolicy)
	}
	np := &meshapi.NodePolicy{Version: v.version, Rules: []meshapi.PolicyRule{}}
	for _, r := range v.p.InboundRules(v.classes.tagsOf(c)) {
		src, ip := r.Strings()
		np.Rules = append(np.Rules, meshapi.PolicyRule{Src: src, IP: ip})
	}
	v.rules.Store(c, np)
	return np
}

// visAt is the visibility in force from a map version on.
type visAt struct {
	from uint64 // in force for map versions >= from
	vis  *visibility
}

// visAtLocked returns the visibility in force at map version v, and
// prunes history the map log no longer reaches.
func (l *Log) visAtLocked(v uint64) *visibility {
	h := l.history
	oldest := l.deltas.Oldest()
	for len(h) > 1 && h[1].from <= oldest {
		h = h[1:]
	}
	l.history = h
	vis := h[0].vis
	for _, e := range h {
		if e.from <= v {
			vis = e.vis
		}
	}
	return vis
}
