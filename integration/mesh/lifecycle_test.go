package mesh

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/meshapi"
)

// SIGTERM: the command stops, the node logs out and is deleted at once
// (reason logout), long before the ephemeral GC would collect it, and
// meshinit exits with the command's code.
func TestStopSignalLogsOutAtOnce(t *testing.T) {
	harness.Integration(t)
	const gcTimeout = time.Minute
	c := coordtest.Start(t, coordtest.Options{EphemeralTimeout: gcTimeout})
	ns, url := loopbackNS(t, c.Addr)
	key := c.CreateKey(t, "--ephemeral", "--reusable")
	m := startMeshinit(t, nodeSpec{coord: url, netns: ns, key: key, hostname: "term",
		command: []string{demo(t), "serve", "-listen", "127.0.0.1:0", "-exit", "42"}})
	m.waitUp()
	m.waitOutput("serving on")
	since := lastSeq(t, c)
	stop := time.Now()
	m.signal(syscall.SIGTERM)
	ev := deletion(t, c, "term", since, waitLimit)
	if ev.Reason != meshapi.ReasonLogout {
		t.Fatalf("deleted with reason %q, want logout", ev.Reason)
	}
	if after := ev.Time.Sub(stop); after > gcTimeout/4 {
		t.Fatalf("deleted %v after the stop signal: not at once", after)
	}
	if code := m.wait(waitLimit); code != 42 {
		t.Fatalf("meshinit exited %d, want the command's 42\nstdout:\n%s\nstderr:\n%s", code, m.stdout, m.stderr)
	}
	if _, ok := c.Node(t, "term"); ok {
		t.Fatal("node still listed after its logout")
	}
}

// SIGKILL: meshinit gets no chance to log out; the coordinator collects the
// ephemeral node once it has been offline for the GC timeout (reason gc),
// not before.
func TestKilledNodeIsCollectedAfterTimeout(t *testing.T) {
	harness.Integration(t)
	const gcTimeout = 2 * time.Second
	c := coordtest.Start(t, coordtest.Options{EphemeralTimeout: gcTimeout, ReconnectGrace: 200 * time.Millisecond})
	ns, url := loopbackNS(t, c.Addr)
	key := c.CreateKey(t, "--ephemeral", "--reusable")
	m := startMeshinit(t, nodeSpec{coord: url, netns: ns, key: key, hostname: "kill"})
	m.waitUp()
	since := lastSeq(t, c)
	killed := time.Now()
	m.signal(syscall.SIGKILL)
	m.wait(waitLimit)
	ev := deletion(t, c, "kill", since, gcTimeout+waitLimit)
	if ev.Reason != meshapi.ReasonGC {
		t.Fatalf("deleted with reason %q, want gc", ev.Reason)
	}
	if after := ev.Time.Sub(killed); after < gcTimeout {
		t.Fatalf("collected %v after SIGKILL, before the %v GC timeout", after, gcTimeout)
	}
}

// A command that ignores SIGTERM: the node logs out when only the logout
// reserve is left, and the command keeps running past the stop deadline
// (meshinit never cuts its shutdown short); it ends when it wants to, and
// meshinit exits with its code. With MESH_STOP_KILL=1 it is killed at the
// deadline instead.
func TestSlowCommandStillLogsOutBeforeDeadline(t *testing.T) {
	harness.Integration(t)
	c := coordtest.Start(t, coordtest.Options{EphemeralTimeout: time.Minute})
	ns, url := loopbackNS(t, c.Addr)
	key := c.CreateKey(t, "--ephemeral", "--reusable")
	const stopTimeout = 3 * time.Second
	for _, kill := range []bool{false, true} {
		name := map[bool]string{false: "slow", true: "slow-kill"}[kill]
		t.Run(name, func(t *testing.T) {
			env := []string{"MESH_STOP_TIMEOUT=3s", "MESH_LOGOUT_TIMEOUT=1s"}
			if kill {
				env = append(env, "MESH_STOP_KILL=1")
			}
			m := startMeshinit(t, nodeSpec{coord: url, netns: ns, key: key, hostname: name, env: env,
				command: []string{demo(t), "hang", "-ignore-term"}})
			m.waitUp()
			m.waitOutput("ignoring SIGTERM")
			since := lastSeq(t, c)
			stop := time.Now()
			m.signal(syscall.SIGTERM)
			ev := deletion(t, c, name, since, waitLimit)
			if ev.Reason != meshapi.ReasonLogout {
				t.Fatalf("deleted with reason %q, want logout", ev.Reason)
			}
			if ev.Time.After(stop.Add(stopTimeout)) {
				t.Fatalf("logout %v after the stop signal, past the %v stop deadline", ev.Time.Sub(stop), stopTimeout)
			}
			if kill {
				code := m.wait(waitLimit)
				if code != 128+int(syscall.SIGKILL) {
					t.Errorf("meshinit exited %d; want %d (the command was killed at the deadline)", code, 128+int(syscall.SIGKILL))
				}
				if exited := time.Since(stop); exited < stopTimeout-500*time.Millisecond {
					t.Errorf("meshinit exited %v after the signal: the command ignoring SIGTERM should have run until the deadline", exited)
				}
				return
			}
			time.Sleep(time.Until(stop.Add(stopTimeout + 1500*time.Millisecond)))
			select {
			case <-m.exited:
				t.Fatalf("meshinit exited %v after SIGTERM: the command's shutdown was cut short\nstderr:\n%s", time.Since(stop), m.stderr)
			default:
			}
			if st, err := m.status(); err != nil || st.State != "logged_out" {
				t.Fatalf("status past the deadline: %+v, %v", st, err)
			}
			m.signal(syscall.SIGINT) // the command's own way out
			if code := m.wait(waitLimit); code != 0 {
				t.Fatalf("meshinit exited %d, want the command's 0\nstderr:\n%s", code, m.stderr)
			}
		})
	}
}

// The coordinator is gone when the container stops: meshinit still exits
// within its stop budget with the command's code, and says the logout
// failed.
func TestCoordinatorGoneBeforeStop(t *testing.T) {
	harness.Integration(t)
	c := coordtest.Start(t, coordtest.Options{})
	ns, url := loopbackNS(t, c.Addr)
	key := c.CreateKey(t, "--ephemeral", "--reusable")
	const stopTimeout = 4 * time.Second
	m := startMeshinit(t, nodeSpec{coord: url, netns: ns, key: key, hostname: "orphan",
		env:     []string{"MESH_STOP_TIMEOUT=4s", "MESH_LOGOUT_TIMEOUT=1s"},
		command: []string{demo(t), "serve", "-listen", "127.0.0.1:0", "-exit", "42"}})
	m.waitUp()
	m.waitOutput("serving on")
	c.Kill(t)
	stop := time.Now()
	m.signal(syscall.SIGTERM)
	code := m.wait(stopTimeout + 5*time.Second)
	took := time.Since(stop)
	if code != 42 {
		t.Fatalf("meshinit exited %d, want the command's 42\nstdout:\n%s\nstderr:\n%s", code, m.stdout, m.stderr)
	}
	if took > stopTimeout+time.Second {
		t.Fatalf("meshinit took %v to exit, beyond its %v budget", took, stopTimeout)
	}
	if !strings.Contains(m.stderr.String(), "logout failed") {
		t.Fatalf("stderr does not say the logout failed:\n%s", m.stderr)
	}
}

// meshinit logout over the control socket: the node leaves now, the
// command keeps running; the later stop does not log out twice.
func TestLogoutVerbWhileCommandRuns(t *testing.T) {
	harness.Integration(t)
	c := coordtest.Start(t, coordtest.Options{EphemeralTimeout: time.Minute})
	ns, url := loopbackNS(t, c.Addr)
	key := c.CreateKey(t, "--ephemeral", "--reusable")
	const health = "127.0.0.1:9090" // the node's namespace is its own: nothing else listens there
	m := startMeshinit(t, nodeSpec{coord: url, netns: ns, key: key, hostname: "verb", env: []string{"MESH_HEALTH_ADDR=" + health}})
	m.waitUp()
	m.waitOutput("hanging")
	if code := httpStatus(t, ns, "http://"+health+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz while up: %d", code)
	}

	out, err := m.cli("status", "--json")
	if err != nil {
		t.Fatalf("meshinit status --json: %v\n%s", err, out)
	}
	st, err := decodeStatus(out)
	if err != nil || st.Name != "verb" || st.FQDN != "verb.mesh.internal" || !st.IPv4.IsValid() || st.Coordinator.State != "connected" {
		t.Fatalf("status --json: %+v (%v)\n%s", st, err, out)
	}
	out, err = m.cli("status")
	if err != nil || !strings.Contains(out, "verb.mesh.internal") || !strings.Contains(out, "connected") {
		t.Fatalf("meshinit status: %v\n%s", err, out)
	}

	since := lastSeq(t, c)
	out, err = m.cli("logout")
	if err != nil || !strings.Contains(out, "logged out") {
		t.Fatalf("meshinit logout: %v\n%s", err, out)
	}
	if ev := deletion(t, c, "verb", since, waitLimit); ev.Reason != meshapi.ReasonLogout {
		t.Fatalf("deleted with reason %q, want logout", ev.Reason)
	}
	select {
	case <-m.exited:
		t.Fatalf("meshinit exited after meshinit logout: the command should keep running\nstderr:\n%s", m.stderr)
	default:
	}
	if st, err := m.status(); err != nil || st.State != "logged_out" {
		t.Fatalf("status after logout: %+v, %v", st, err)
	}
	if code := httpStatus(t, ns, "http://"+health+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz after logout: %d, want 503", code)
	}
	if code := httpStatus(t, ns, "http://"+health+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz after logout: %d, want 200 (meshinit still runs)", code)
	}
	m.signal(syscall.SIGTERM)
	if code := m.wait(waitLimit); code != 0 {
		t.Fatalf("meshinit exited %d after SIGTERM\nstderr:\n%s", code, m.stderr)
	}
	if strings.Contains(m.stderr.String(), "logout failed") {
		t.Fatalf("the stop path tried to log out again:\n%s", m.stderr)
	}
}
