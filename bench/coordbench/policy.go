package main

// The access-policy variant of the scale run: the same nodes, churn and
// measures, with every node tagged and a policy in force, so each change
// reaches only the nodes whose (trimmed) map holds the node it is about.
//
// Tags: tags/2 pairs ci-NN and db-NN, each node one tag, round robin;
// grants ci-NN → db-NN tcp:5432 (so every map holds one tag's nodes, about
// nodes/tags of them), plus one observer tag that may ping every node: the
// bench's observer (which maps versions to changes) and its markers (which
// every stream must read for the run to settle) carry it, so they see and
// are seen by all. The observer adds one peer to every map.

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

// observerTag is the tag index of the observer and the markers.
const observerTag = -1

// benchPolicy is the policy of a run: how many tags, and a key per tag.
type benchPolicy struct {
	tags     int
	keys     []string // per tag index
	observer string   // the observer's key
}

// tagName is the name of tag index i: ci-00, db-00, ci-01, db-01, …
func tagName(i int) string {
	kind := "ci"
	if i%2 == 1 {
		kind = "db"
	}
	return fmt.Sprintf("%s-%02d", kind, i/2)
}

// document is the policy the run puts in force.
func (p *benchPolicy) document() string {
	var b strings.Builder
	b.WriteString(`{"grants": [` + "\n")
	b.WriteString(`  {"src": ["tag:observer"], "dst": ["*"], "ip": ["icmp"]},` + "\n")
	for i := 0; i+1 < p.tags; i += 2 {
		fmt.Fprintf(&b, `  {"src": ["tag:%s"], "dst": ["tag:%s"], "ip": ["tcp:5432"]},`+"\n", tagName(i), tagName(i+1))
	}
	b.WriteString("]}\n")
	return b.String()
}

// sees reports whether a node tagged a has a node tagged b in its map.
func (p *benchPolicy) sees(a, b int) bool {
	if p == nil || a == observerTag || b == observerTag {
		return true
	}
	return a != b && a/2 == b/2 // ci-NN and db-NN
}

// setUp puts the policy in force on srv and creates its keys.
func setUpPolicy(srv *server, tags int) (*benchPolicy, error) {
	if tags < 2 || tags%2 != 0 || tags > 200 {
		return nil, fmt.Errorf("-tags %d: want an even number in [2, 200]", tags)
	}
	p := &benchPolicy{tags: tags}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := srv.admin.SetPolicy(ctx, []byte(p.document())); err != nil {
		return nil, fmt.Errorf("setting the policy: %w", err)
	}
	var err error
	if p.observer, err = srv.createTaggedKey("tag:observer"); err != nil {
		return nil, err
	}
	for i := range tags {
		k, err := srv.createTaggedKey("tag:" + tagName(i))
		if err != nil {
			return nil, err
		}
		p.keys = append(p.keys, k)
	}
	return p, nil
}

// keyFor returns the key and tag index of the nth node registered in a run
// (n counts from 0, the observer).
func (b *bench) keyFor(n int) (string, int) {
	switch {
	case b.pol == nil:
		return b.key, 0
	case n == 0:
		return b.pol.observer, observerTag
	}
	t := (n - 1) % b.pol.tags
	return b.pol.keys[t], t
}

// markerKey is the key of the settle markers, which every node must see.
func (b *bench) markerKey() (string, int) {
	if b.pol == nil {
		return b.key, 0
	}
	return b.pol.observer, observerTag
}

func (s *server) createTaggedKey(tag string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k, err := s.admin.CreateKey(ctx, meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true, Tags: []string{tag}, Description: "coordbench " + tag})
	if err != nil {
		return "", err
	}
	return k.Key, nil
}
