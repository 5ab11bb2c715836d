package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgServer is a private PostgreSQL for the bench, run by scripts/postgres.sh
// with its default (durable) settings: commits are flushed, as a real
// deployment's are.
type pgServer struct {
	dir, url string
}

const pgScript = "scripts/postgres.sh"

func startPostgres() (*pgServer, error) {
	if _, err := os.Stat(pgScript); err != nil {
		return nil, fmt.Errorf("%s not found: run the bench from the repository root", pgScript)
	}
	dir, err := os.MkdirTemp("/tmp", "mipg-")
	if err != nil {
		return nil, err
	}
	if out, err := exec.Command("bash", pgScript, "start", dir).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting PostgreSQL (%s install adds it): %v\n%s", pgScript, err, out)
	}
	u, err := exec.Command("bash", pgScript, "url", dir).Output()
	if err != nil {
		exec.Command("bash", pgScript, "remove", dir).Run()
		return nil, err
	}
	return &pgServer{dir: dir, url: strings.TrimSpace(string(u))}, nil
}

// newDatabase creates an empty database and returns its URL.
func (p *pgServer) newDatabase() (string, error) {
	var b [6]byte
	rand.Read(b[:])
	name := "bench_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.url)
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	u, _ := url.Parse(p.url)
	u.Path = "/" + name
	return u.String(), nil
}

func (p *pgServer) remove() {
	exec.Command("bash", pgScript, "remove", p.dir).Run()
}

// cpu returns the CPU time the server (the postmaster and every process it
// forked: backends, WAL writer, checkpointer) has used so far.
func (p *pgServer) cpu() time.Duration {
	b, err := os.ReadFile(p.dir + "/data/postmaster.pid")
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	var master int
	fmt.Sscan(first, &master)
	total := cpuTime(master)
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) > 1 && f[1] == fmt.Sprint(master) {
			total += cpuTime(pid)
		}
	}
	return total
}
