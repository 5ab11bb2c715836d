package node

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// front is a real HTTP server in front of the coordinator, as an ingress,
// a WAF or a reverse proxy would be: it passes requests through, or, per
// path, answers them itself with a status and an HTML body that is not the
// coordinator's (foreign), or holds them until the client gives up (hold).
type front struct {
	URL   string
	proxy *httputil.ReverseProxy
	held  chan string   // the path of each request it starts holding
	done  chan struct{} // closed at the end of the test: held requests end

	mu      sync.Mutex
	foreign map[string]int // path → status answered by the front itself
	hold    map[string]bool
	served  map[string]int // foreign answers given, per path
	passing map[*http.Request]context.CancelFunc
}

func newFront(t *testing.T, coordURL string) *front {
	t.Helper()
	target, err := url.Parse(coordURL)
	if err != nil {
		t.Fatal(err)
	}
	f := &front{
		proxy:   httputil.NewSingleHostReverseProxy(target),
		held:    make(chan string, 16),
		done:    make(chan struct{}),
		foreign: map[string]int{},
		hold:    map[string]bool{},
		served:  map[string]int{},
		passing: map[*http.Request]context.CancelFunc{},
	}
	f.proxy.FlushInterval = -1 // the map stream is a stream
	srv := httptest.NewServer(f)
	t.Cleanup(func() {
		close(f.done)
		srv.Close()
	})
	f.URL = srv.URL
	return f
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	status, foreign := f.foreign[r.URL.Path]
	hold := f.hold[r.URL.Path]
	if foreign {
		f.served[r.URL.Path]++
	}
	f.mu.Unlock()
	switch {
	case hold:
		select {
		case f.held <- r.URL.Path:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-f.done:
		}
	case foreign:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<html><head><title>%d %s</title></head><body><center><h1>%d %s</h1></center><hr><center>nginx</center></body></html>\n",
			status, http.StatusText(status), status, http.StatusText(status))
	default:
		ctx, cancel := context.WithCancel(r.Context())
		r = r.WithContext(ctx)
		f.mu.Lock()
		f.passing[r] = cancel
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			delete(f.passing, r)
			f.mu.Unlock()
			cancel()
		}()
		f.proxy.ServeHTTP(w, r)
	}
}

// cut breaks every request passing through now (the map stream), as an
// ingress does when it reloads.
func (f *front) cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, cancel := range f.passing {
		cancel()
	}
}

// answer makes the front answer path itself with status (0: pass it
// through again).
func (f *front) answer(path string, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if status == 0 {
		delete(f.foreign, path)
		return
	}
	f.foreign[path] = status
}

// holdRequests makes the front hold every request for path.
func (f *front) holdRequests(path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hold[path] = true
}

// foreignAnswers is how many times the front answered path itself.
func (f *front) foreignAnswers(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.served[path]
}
