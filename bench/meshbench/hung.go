package main

// The exit path with a coordinator that stops answering: meshinit joins
// through a front (a reverse proxy on loopback), the front then holds every
// request without answering, and the app exits on SIGTERM. meshinit must
// exit when the logout's MESH_LOGOUT_TIMEOUT runs out, not later; a
// concurrent "meshinit logout" stuck on the same coordinator must not
// delay it (issue 8.3).

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"
)

func init() {
	addPart(part{name: "hung", order: 15, run: runHung})
}

// hangingFront passes requests to the coordinator until hang is set, then
// holds each one until its client gives up.
type hangingFront struct {
	proxy *httputil.ReverseProxy
	hang  atomic.Bool
}

func (f *hangingFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.hang.Load() {
		<-r.Context().Done()
		return
	}
	f.proxy.ServeHTTP(w, r)
}

const hungLogoutTimeout = time.Second

func runHung(b binaries, runs int) error {
	dir, coord, k, done, err := benchMesh(b.meshcoord, "meshbench-hung-")
	if err != nil {
		return err
	}
	defer done()
	target, _ := url.Parse(coord.url)
	front := &hangingFront{proxy: httputil.NewSingleHostReverseProxy(target)}
	front.proxy.FlushInterval = -1
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: front}
	go srv.Serve(ln)
	defer srv.Close()

	n := max(3, runs/3) // each run takes about a second
	var alone, withVerb []time.Duration
	for i := range n {
		for _, verb := range []bool{false, true} {
			front.hang.Store(false)
			sock := filepath.Join(dir, fmt.Sprintf("ctl-%d.sock", i))
			env := []string{"PATH=" + os.Getenv("PATH"), "MESH_AUTHKEY=" + k.Key, "MESH_COORDINATOR=http://" + ln.Addr().String(),
				"MESH_HOSTNAME=" + fmt.Sprintf("hung-%d-%v", i, verb), "MESH_PROXY=127.0.0.1:0", "MESH_CONTROL_SOCKET=" + sock,
				"MESH_LOGOUT_TIMEOUT=" + hungLogoutTimeout.String()}
			cmd, stderr, _, err := startApp([]string{b.meshinit, "--", b.meshdemo, "hang"}, env)
			if err != nil {
				return err
			}
			front.hang.Store(true)
			var v *exec.Cmd
			if verb {
				// "meshinit logout" now holds the node's logout lock on the
				// hung coordinator (the running meshinit gives it its own
				// MESH_LOGOUT_TIMEOUT, here 1 s; the verb would wait 30 s).
				v = exec.Command(b.meshinit, "logout")
				v.Env = append(slices.Clone(env), "MESH_LOGOUT_TIMEOUT=30s")
				if err := v.Start(); err != nil {
					return err
				}
				time.Sleep(100 * time.Millisecond) // let it reach the coordinator; it hangs there
			}
			_, took := stopApp(cmd)
			if v != nil {
				v.Process.Kill()
				v.Wait()
			}
			if took > 10*hungLogoutTimeout {
				return fmt.Errorf("meshinit took %v to exit with a hung coordinator\n%s", took, stderr)
			}
			if verb {
				withVerb = append(withVerb, took)
			} else {
				alone = append(alone, took)
			}
		}
	}
	fmt.Printf("\nhung coordinator: SIGTERM → meshinit exited (app exits at once, MESH_LOGOUT_TIMEOUT=%v), median of %d runs\n", hungLogoutTimeout, n)
	share := func(d time.Duration) string {
		return fmt.Sprintf("%.2f× the timeout", float64(d)/float64(hungLogoutTimeout))
	}
	fmt.Printf("  %-58s %10s  %s\n", "coordinator holds the logout", fmtDur(median(alone)), share(median(alone)))
	fmt.Printf("  %-58s %10s  %s\n", "…and a 30 s 'meshinit logout' holds the node's logout too", fmtDur(median(withVerb)), share(median(withVerb)))
	return nil
}
