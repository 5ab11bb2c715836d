package controlclient

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
)

// coordinators is the list of coordinator URLs a client talks to, one at a
// time: replicas of one mesh, each able to serve any node. The client stays
// with the current one while it works; a failure that another replica could
// serve (retryable: unreachable, 5xx, 429, an answer from something in front
// of it) moves the next attempt to the next URL, round robin. The callers'
// backoff paces the attempts, so a mesh whose replicas are all down is not
// stormed.
type coordinators struct {
	urls []*url.URL
	log  *slog.Logger

	mu  sync.Mutex
	cur int
	// changed is closed (and dropped) when cur moves; made on demand by
	// watch, so a client nobody watches allocates nothing.
	changed chan struct{}
}

// ParseCoordinatorList checks and normalises a comma-separated list of
// coordinator addresses (MESH_COORDINATOR); each is as ParseCoordinatorURL
// takes it.
func ParseCoordinatorList(s string) ([]*url.URL, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("coordinator address is empty: set MESH_COORDINATOR to the meshcoord URL (or a comma-separated list of replicas), e.g. http://127.0.0.1:8080")
	}
	parts := strings.Split(s, ",")
	urls := make([]*url.URL, 0, len(parts))
	for i, p := range parts {
		if strings.TrimSpace(p) == "" {
			return nil, fmt.Errorf("coordinator list %q: entry %d is empty (want URLs separated by single commas)", s, i+1)
		}
		u, err := ParseCoordinatorURL(p)
		if err != nil {
			if len(parts) > 1 {
				return nil, fmt.Errorf("coordinator list, entry %d: %w", i+1, err)
			}
			return nil, err
		}
		urls = append(urls, u)
	}
	return urls, nil
}

// current returns the URL to use now.
func (cs *coordinators) current() *url.URL {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.urls[cs.cur]
}

// watch returns the URL to use now and a channel closed when cur moves
// off it.
func (cs *coordinators) watch() (*url.URL, <-chan struct{}) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.changed == nil {
		cs.changed = make(chan struct{})
	}
	return cs.urls[cs.cur], cs.changed
}

// failed moves off the coordinator that served u, if it is still the
// current one (concurrent calls that failed on it move once, not twice).
func (cs *coordinators) failed(u *url.URL, err error) {
	if len(cs.urls) < 2 {
		return
	}
	cs.mu.Lock()
	from := cs.urls[cs.cur]
	if !sameCoordinator(from, u) {
		cs.mu.Unlock()
		return
	}
	cs.cur = (cs.cur + 1) % len(cs.urls)
	to := cs.urls[cs.cur]
	if cs.changed != nil {
		close(cs.changed) // wakes every watcher of the old one
		cs.changed = nil
	}
	cs.mu.Unlock()
	cs.log.Warn("coordinator failed, switching to the next", "from", from.Redacted(), "to", to.Redacted(), "err", err)
}

// sameCoordinator reports whether request URL r was made from base b.
func sameCoordinator(b, r *url.URL) bool {
	return b.Scheme == r.Scheme && b.Host == r.Host && strings.HasPrefix(r.Path, b.Path+"/")
}
