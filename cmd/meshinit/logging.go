package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/meshinit/meshinit/shim"
)

// logPrefix marks meshinit's own lines among the command's output on the
// same stderr.
const logPrefix = "meshinit: "

// newLogger builds the logger for stderr from MESH_LOG_LEVEL and
// MESH_LOG_FORMAT.
func newLogger(level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("MESH_LOG_LEVEL (--%s) is %q: use debug, info, warn or error", flagLogLevel, level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	out := shim.TerminalSafe(os.Stderr)
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(&prefixWriter{w: out}, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(out, opts)).With("src", "meshinit"), nil
	default:
		return nil, fmt.Errorf("MESH_LOG_FORMAT (--%s) is %q: use text or json", flagLogFormat, format)
	}
}

// prefixWriter puts logPrefix before each line. slog handlers write one
// whole line per Write call.
type prefixWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf bytes.Buffer
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf.Reset()
	p.buf.WriteString(logPrefix)
	p.buf.Write(b)
	if _, err := p.w.Write(p.buf.Bytes()); err != nil {
		return 0, err
	}
	return len(b), nil
}
