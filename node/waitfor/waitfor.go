// Package waitfor holds an app back until the mesh peers it depends on
// answer (MESH_WAIT_FOR=db:5432,cache:6379): each listed NAME:PORT must
// accept a TCP connection over the mesh before Wait returns.
//
// A peer that is not in the node's map yet, one that refuses, and one that
// does not answer are all retried, with a short backoff, until the context
// ends (meshinit bounds it with MESH_WAIT_TIMEOUT); the error then names
// every peer that never answered and the last reason.
package waitfor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/meshinit/meshinit/node/hostport"
)

// DialFunc connects over the mesh. It should fail at once for a name the
// map does not hold (the node's DialMesh does), so a peer that joins late is
// tried again as soon as the backoff allows.
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// Backoff between attempts at one peer: first wait, then doubling up to the
// maximum. Short, because a peer that starts is usually up within moments
// and the app waits on it.
const (
	firstBackoff = 50 * time.Millisecond
	maxBackoff   = 500 * time.Millisecond
	// attemptTimeout bounds one connection attempt, so a SYN lost before
	// the tunnel's handshake completed does not use up the whole wait.
	attemptTimeout = 3 * time.Second
)

// TimeoutError is Wait's error when the context ended before every peer
// answered.
type TimeoutError struct {
	Pending []Pending // the peers that did not answer, in the order given
	Cause   error     // the context's error
}

// Pending is one peer that did not answer, with the last attempt's error.
type Pending struct {
	Target  hostport.HostPort
	LastErr error
}

func (e *TimeoutError) Error() string {
	parts := make([]string, len(e.Pending))
	for i, p := range e.Pending {
		parts[i] = fmt.Sprintf("%s did not answer (last attempt: %v)", p.Target, p.LastErr)
	}
	return strings.Join(parts, "; ")
}

func (e *TimeoutError) Unwrap() error { return e.Cause }

// Wait returns nil once every target has accepted a TCP connection (which
// it then closes), or a *TimeoutError when ctx ends first. With no targets
// it returns at once.
func Wait(ctx context.Context, dial DialFunc, targets []hostport.HostPort, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = waitOne(ctx, dial, t, log)
		}()
	}
	wg.Wait()
	var pending []Pending
	for i, err := range errs {
		if err != nil {
			pending = append(pending, Pending{Target: targets[i], LastErr: err})
		}
	}
	if pending == nil {
		return nil
	}
	return &TimeoutError{Pending: pending, Cause: ctx.Err()}
}

// waitOne tries t until it answers (nil) or ctx ends (the last attempt's
// error).
func waitOne(ctx context.Context, dial DialFunc, t hostport.HostPort, log *slog.Logger) error {
	begin := time.Now()
	backoff := firstBackoff
	var lastErr error
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		c, err := dial(actx, "tcp", t.String())
		cancel()
		if err == nil {
			c.Close()
			log.Info("peer answered", "peer", t.String(), "attempts", attempt,
				"waited", time.Since(begin).Round(time.Millisecond).String())
			return nil
		}
		if lastErr == nil || err.Error() != lastErr.Error() {
			log.Debug("waiting for peer", "peer", t.String(), "err", err)
		}
		lastErr = err
		select {
		case <-ctx.Done():
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				err = fmt.Errorf("no answer: %w", err)
			}
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}
