package node

import (
	"context"
	"log/slog"
)

// logAfter collects the lines a critical section has to say, to be written
// once the lock is released: a log call may block (stderr a full pipe), and
// under n.mu that would stall the map stream, the proxy's dials and status
// with it.
type logAfter []logLine

type logLine struct {
	level slog.Level
	msg   string
	args  []any
}

func (l *logAfter) info(msg string, args ...any) {
	*l = append(*l, logLine{slog.LevelInfo, msg, args})
}

func (l *logAfter) warn(msg string, args ...any) {
	*l = append(*l, logLine{slog.LevelWarn, msg, args})
}

// writeTo logs the collected lines, in order. Call it without n.mu. (A
// pointer receiver: "defer l.writeTo(log)" must see the lines added after
// the defer statement.)
func (l *logAfter) writeTo(log *slog.Logger) {
	for _, line := range *l {
		log.Log(context.Background(), line.level, line.msg, line.args...)
	}
}
