package mesh

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/meshapi"
)

// TestAppCannotReadTheSecrets: the command under meshinit reads
// meshinit's /proc/<pid>/environ, cmdline and mem (every readable mapping)
// as an app would, as the same uid and as root without CAP_SYS_PTRACE
// (Docker's default), with meshinit as PID 1 of a PID namespace and as the
// app's parent when it is not PID 1. Neither the auth key nor the node
// secret (captured by a reverse proxy in front of the coordinator) is in
// anything it gets. A key given on the command line, and a reader that
// does hold CAP_SYS_PTRACE, still find no key in environ or cmdline.
func TestAppCannotReadTheSecrets(t *testing.T) {
	harness.Integration(t)
	setpriv := harness.LookPath(t, "setpriv")
	sh := harness.LookPath(t, "sh")
	c := coordtest.Start(t, coordtest.Options{})
	capture := newSecretCapture(t, c.Addr)
	ns, coordURL := loopbackNS(t, capture.addr)
	key := c.CreateKey(t, "--ephemeral", "--reusable")

	// Binaries a non-root uid can run.
	binDir := openDir(t, 0o755)
	meshinitBin := copyExecutable(t, harness.Binary(t, "meshinit"), binDir)
	spy := copyExecutable(t, harness.Program(t, "./integration/mesh/internal/procspy"), binDir)

	sameUID := []string{setpriv, "--reuid=1000", "--regid=1000", "--clear-groups"}
	noPtrace := []string{setpriv, "--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace"}
	notPID1 := []string{sh, "-c", `"$@"; exit $?`, "sh"} // meshinit is sh's child
	cases := []struct {
		name    string
		wrap    []string
		target  string
		flagKey bool // key on the command line instead of MESH_AUTHKEY
		mem     bool // memory must hold no secret either (false: a reader with CAP_SYS_PTRACE may read it)
	}{
		{"PID 1, same uid", sameUID, "1", false, true},
		{"PID 1, root without CAP_SYS_PTRACE", noPtrace, "1", false, true},
		{"not PID 1, same uid", append(sameUID, notPID1...), "ppid", false, true},
		{"not PID 1, root without CAP_SYS_PTRACE", append(noPtrace, notPID1...), "ppid", false, true},
		{"PID 1, key on the command line, same uid", sameUID, "1", true, true},
		{"PID 1, root with CAP_SYS_PTRACE", nil, "1", false, false},
		{"PID 1, key on the command line, root with CAP_SYS_PTRACE", nil, "1", true, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := openDir(t, 0o777)
			spec := nodeSpec{coord: coordURL, netns: ns, hostname: "spied" + string(rune('a'+i)), bin: meshinitBin, wrap: tc.wrap,
				command: []string{spy, "-target", tc.target, "-out", out}}
			if tc.flagKey {
				spec.args = []string{"--authkey", key}
			} else {
				spec.key = key
			}
			m := startMeshinit(t, spec)
			if code := m.wait(waitLimit); code != 0 {
				t.Fatalf("meshinit exited %d\nstderr:\n%s", code, m.stderr)
			}
			done, err := os.ReadFile(filepath.Join(out, "done"))
			if err != nil {
				t.Fatalf("the spy did not finish: %v\nstderr:\n%s", err, m.stderr)
			}
			secret := capture.secretFor(t, spec.hostname)
			files := []string{"environ", "cmdline"}
			if tc.mem {
				files = append(files, "mem")
			}
			for _, f := range files {
				b, err := os.ReadFile(filepath.Join(out, f))
				if err != nil {
					why, _ := os.ReadFile(filepath.Join(out, f+".err"))
					t.Logf("%s: not readable by the app: %s", f, bytes.TrimSpace(why))
					continue
				}
				t.Logf("%s: the app read %d bytes", f, len(b))
				if bytes.Contains(b, []byte(key)) {
					t.Errorf("the app found the auth key in /proc/%s/%s", tc.target, f)
				}
				if bytes.Contains(b, []byte(secret)) {
					t.Errorf("the app found the node secret in /proc/%s/%s", tc.target, f)
				}
			}
			if tc.flagKey && !strings.Contains(m.stderr.String(), "auth key was given on the command line") {
				t.Errorf("no warning about the key on the command line:\n%s", m.stderr)
			}
			t.Logf("spy: %s", bytes.TrimSpace(done))
		})
	}
}

// secretCapture is a reverse proxy in front of the coordinator that notes
// the node secret of every registration, so the test knows what to look
// for in the app's dumps.
type secretCapture struct {
	addr   string
	mu     sync.Mutex
	byName map[string]string
}

func newSecretCapture(t *testing.T, coordAddr string) *secretCapture {
	t.Helper()
	target, _ := url.Parse("http://" + coordAddr)
	sc := &secretCapture{byName: map[string]string{}}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.URL.Path != meshapi.PathRegister || resp.StatusCode != http.StatusOK {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		var reg meshapi.RegisterResponse
		if err := json.Unmarshal(body, &reg); err == nil {
			sc.mu.Lock()
			sc.byName[reg.Node.Name] = reg.Secret
			sc.mu.Unlock()
		}
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	sc.addr = ln.Addr().String()
	return sc
}

func (sc *secretCapture) secretFor(t *testing.T, name string) string {
	t.Helper()
	sc.mu.Lock()
	defer sc.mu.Unlock()
	s := sc.byName[name]
	if !strings.HasPrefix(s, "mnode-") {
		t.Fatalf("no node secret captured for %s (have %v)", name, sc.byName)
	}
	return s
}

// copyExecutable copies bin into dir (mode 0755) and returns the copy.
func copyExecutable(t *testing.T, bin, dir string) string {
	t.Helper()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, filepath.Base(bin))
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// openDir makes a temp directory with mode perm, whose parents other uids
// can traverse (t.TempDir's are 0700).
func openDir(t *testing.T, perm os.FileMode) string {
	t.Helper()
	d, err := os.MkdirTemp("", "mesh-spy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, perm); err != nil {
		t.Fatal(err)
	}
	return d
}
