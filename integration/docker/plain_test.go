package docker_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Plain init (no MESH_AUTHKEY): meshinit must behave like tini as the
// container's PID 1. These also prove the harness before the mesh is used.

func TestPlainExitCodeIsTheApps(t *testing.T) {
	suite(t)
	t.Parallel()
	for _, want := range []int{0, 7, 200} {
		code, out := dockerCode(t, "run", "--rm", imageTestapp, "exit", strconv.Itoa(want))
		if code != want {
			t.Errorf("docker run … exit %d: docker exited %d, want %d; output:\n%s", want, code, want, out)
		}
	}
}

func TestPlainCommandNotFoundAndNotExecutable(t *testing.T) {
	suite(t)
	t.Parallel()
	code, out := dockerCode(t, "run", "--rm", "--entrypoint", "/meshinit", imageTestapp, "--", "/no/such/app")
	if code != 127 {
		t.Errorf("missing command: exit %d, want 127; output:\n%s", code, out)
	}
	// docker bind-mounts /etc/hostname into every container: a file that is
	// there but not executable.
	code, out = dockerCode(t, "run", "--rm", "--entrypoint", "/meshinit", imageTestapp, "--", "/etc/hostname")
	if code != 126 {
		t.Errorf("not executable: exit %d, want 126; output:\n%s", code, out)
	}
}

var startLineRE = regexp.MustCompile(`testapp start t=(\d+) pid=(\d+) ppid=(\d+) pgid=(\d+) sid=(\d+) pid1=(\S+) mesh_name=(\S*) mesh_ipv4=(\S*) authkey_visible=(\w+)`)

// startLine is the testapp's first line, parsed.
type startLine struct {
	t                        time.Time
	pid, ppid, pgid, sid     int
	pid1, meshName, meshIPv4 string
	authkeyVisible           bool
}

func parseStart(t *testing.T, out string) startLine {
	t.Helper()
	m := startLineRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no testapp start line in output:\n%s", out)
	}
	n := func(s string) int {
		v, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("start line %q: %v", m[0], err)
		}
		return v
	}
	ns, _ := strconv.ParseInt(m[1], 10, 64)
	return startLine{
		t: time.Unix(0, ns), pid: n(m[2]), ppid: n(m[3]), pgid: n(m[4]), sid: n(m[5]),
		pid1: m[6], meshName: m[7], meshIPv4: m[8], authkeyVisible: m[9] == "true",
	}
}

func TestPlainMeshinitIsPID1(t *testing.T) {
	suite(t)
	t.Parallel()
	out := docker(t, "run", "--rm", imageTestapp, "info")
	s := parseStart(t, out)
	if s.pid1 != "/meshinit" {
		t.Errorf("PID 1 is %q, want /meshinit", s.pid1)
	}
	if s.ppid != 1 {
		t.Errorf("the app's parent is pid %d, want 1 (meshinit)", s.ppid)
	}
	if s.pid == 1 {
		t.Errorf("the app itself is PID 1: meshinit did not stay in front")
	}
}

func TestPlainSignalsForwardedAndStopStatus(t *testing.T) {
	suite(t)
	t.Parallel()
	name := container(t, "plain-signals")
	docker(t, "run", "-d", "--name", name, imageTestapp, "sleep", "-term", "exit:42")
	waitLog(t, name, "testapp ready", 30*time.Second)
	for sig, says := range map[string]string{"USR1": "SIGUSR1", "HUP": "SIGHUP", "WINCH": "SIGWINCH"} {
		docker(t, "kill", "--signal", sig, name)
		waitLog(t, name, "testapp got "+says, 10*time.Second)
	}
	docker(t, "stop", name)
	if got := docker(t, "wait", name); got != "42" {
		t.Errorf("docker wait after stop: %q, want the app's own 42", got)
	}
}

func TestPlainDeathBySignalIs128PlusN(t *testing.T) {
	suite(t)
	t.Parallel()
	name := container(t, "plain-sigterm")
	docker(t, "run", "-d", "--name", name, imageTestapp, "sleep", "-term", "default")
	waitLog(t, name, "testapp ready", 30*time.Second)
	start := time.Now()
	docker(t, "stop", "--time", "30", name)
	if got := docker(t, "wait", name); got != "143" {
		t.Errorf("app killed by SIGTERM: exit %q, want 143 (128+15)", got)
	}
	// The app died of the forwarded SIGTERM, so docker never needed its
	// SIGKILL; that would have taken the whole 30 s.
	if oom := inspect(t, name, "{{.State.OOMKilled}}"); strings.TrimSpace(oom) != "false" {
		t.Errorf("OOMKilled=%s", oom)
	}
	t.Logf("docker stop of an app that dies of SIGTERM took %v", time.Since(start).Round(time.Millisecond))
}
