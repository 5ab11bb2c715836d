// Command hello is the example app of images/example: a static HTTP server
// that greets with its mesh name. It knows nothing about the mesh: meshinit
// brings the node up before starting it, forwards connections to its mesh
// address to localhost (MESH_FORWARD) and logs it out when it stops.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := os.Getenv("HELLO_ADDR")
	if addr == "" {
		addr = ":8080"
	}
	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", os.Getenv("MESH_NAME"))
	})}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		// meshinit forwarded the stop signal: finish requests, then exit 0.
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	slog.Info("hello listening", "addr", addr, "mesh_name", os.Getenv("MESH_NAME"), "mesh_ipv4", os.Getenv("MESH_IPV4"))
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		slog.Error("hello", "err", err)
		os.Exit(1)
	}
	slog.Info("hello stopped")
}
