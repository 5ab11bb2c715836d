package coordinator

import (
	"bufio"
	"net/http"
	"strconv"

	"github.com/meshinit/meshinit/meshapi"
)

// handleEvents streams the event history after ?since=SEQ as NDJSON, and
// with ?follow=1 keeps the stream open for new events. Recent events come
// from memory, older ones from the store.
func (a adminAPI) handleEvents(w http.ResponseWriter, r *http.Request) {
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
	a.s.events.Copy(r.Context(), cursor, follow, a.s.done, &flushWriter{bufio.NewWriterSize(w, 32<<10), http.NewResponseController(w)})
}

// flushWriter buffers an event stream and flushes it to the client.
type flushWriter struct {
	*bufio.Writer
	rc *http.ResponseController
}

func (f *flushWriter) Flush() error {
	if err := f.Writer.Flush(); err != nil {
		return err
	}
	return f.rc.Flush()
}
