package dataplane

import (
	"context"
	"fmt"
	"log/slog"

	"golang.zx2c4.com/wireguard/device"
)

// wgLogger adapts wireguard-go's printf logger to slog. Its verbose lines
// (a line per keepalive and handshake) become debug lines, and when debug
// is off they are not even formatted.
func wgLogger(log *slog.Logger) *device.Logger {
	l := &device.Logger{Verbosef: device.DiscardLogf, Errorf: device.DiscardLogf}
	if log.Enabled(context.Background(), slog.LevelDebug) {
		l.Verbosef = func(format string, args ...any) {
			log.Debug(fmt.Sprintf(format, args...), "component", "wireguard")
		}
	}
	if log.Enabled(context.Background(), slog.LevelError) {
		l.Errorf = func(format string, args ...any) {
			log.Error(fmt.Sprintf(format, args...), "component", "wireguard")
		}
	}
	return l
}
