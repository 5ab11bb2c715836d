package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshinit/meshinit/coordinator/store"
)

// dbSize measures how big the database grows: n joins and leaves
// (register, open the map stream, log out) by 16 concurrent clients, then
// a clean stop, then the size of the SQLite file and what it holds. Extra
// serve flags (such as --event-retention) come in args.
func dbSize(bin string, n int, args []string) error {
	srv, err := startServer(bin, args...)
	if err != nil {
		return err
	}
	defer srv.stop()
	key, err := srv.createKey()
	if err != nil {
		return err
	}
	start := time.Now()
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := joinAndLeave(srv.url, key); err != nil {
					if failed.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "coordbench: join and leave:", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	srv.shutdown()

	db := filepath.Join(srv.dir, "bench.db")
	var size int64
	for _, f := range []string{db, db + "-wal", db + "-shm"} {
		if fi, err := os.Stat(f); err == nil {
			size += fi.Size()
		}
	}
	st, err := store.OpenSQLite(context.Background(), db)
	if err != nil {
		return err
	}
	defer st.Close()
	snap, err := st.Load(context.Background())
	if err != nil {
		return err
	}
	kept := 0
	for after := uint64(0); ; {
		evs, err := st.Events(context.Background(), after, 10000)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			break
		}
		kept += len(evs)
		after = evs[len(evs)-1].Seq
	}
	fmt.Printf("\ndatabase size after %d joins and leaves (register, map stream, logout; serve flags %v):\n", n, args)
	fmt.Printf("  %.1f MiB on disk (file, WAL and shm after a clean stop); %d nodes; events: %d numbered, %d kept; %v (%d failed)\n",
		float64(size)/(1<<20), len(snap.Nodes), snap.LastEventSeq, kept, elapsed.Round(time.Second), failed.Load())
	return nil
}

func joinAndLeave(url, key string) error {
	s, err := register(url, key, "churn")
	if err != nil {
		return err
	}
	if err := s.connect(url, new(atomic.Pointer[window]), nil); err != nil {
		return err
	}
	<-s.ready
	err = s.logout(url)
	s.close()
	return err
}
