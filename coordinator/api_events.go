package coordinator

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/meshinit/meshinit/coordinator/deltalog"
	"github.com/meshinit/meshinit/meshapi"
)

// handleEvents streams the event history after ?since=SEQ as NDJSON, and
// with ?follow=1 keeps the stream open for new events. Recent events come
// from memory, older ones from the store.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var cursor uint64
	if v := q.Get("since"); v != "" {
		var err error
		if cursor, err = strconv.ParseUint(v, 10, 64); err != nil {
			writeError(w, badRequest("since=%q: want an event sequence number", v))
			return
		}
	}
	follow := false
	switch v := q.Get("follow"); v {
	case "", "0", "false":
	case "1", "true":
		follow = true
	default:
		writeError(w, badRequest("follow=%q: want 1 or 0", v))
		return
	}
	w.Header().Set("Content-Type", meshapi.ContentTypeStream)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	bw := bufio.NewWriterSize(w, 32<<10)
	flush := func() bool { return bw.Flush() == nil && rc.Flush() == nil }
	buf := make([]deltalog.Entry, 0, 256)
	for {
		// Events past the retention are gone from the store; the ones
		// still in memory are not shown either.
		cursor = max(cursor, s.pruned.Load())
		entries, wait, ok := s.events.Read(cursor, buf[:0], 0)
		switch {
		case !ok && cursor+1 < s.events.Oldest():
			// Older than memory holds: read a page from the store.
			evs, err := s.st.Events(r.Context(), cursor, 1000)
			if err != nil {
				return
			}
			if len(evs) == 0 {
				cursor = s.events.Oldest() - 1
				continue
			}
			for _, e := range evs {
				b, _ := json.Marshal(e)
				bw.Write(append(b, '\n'))
				cursor = e.Seq
			}
			if !flush() {
				return
			}
			continue
		case !ok:
			entries = nil // since is in the future: wait for it
		}
		for _, e := range entries {
			bw.Write(e.Data)
			cursor = e.Version
		}
		if len(entries) > 0 {
			if !flush() {
				return
			}
			continue
		}
		if !follow {
			flush()
			return
		}
		select {
		case <-wait:
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		}
	}
}
