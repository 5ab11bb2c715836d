package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/harness"
)

// TUN mode under dockerd, as users run it: --cap-add NET_ADMIN --device
// /dev/net/tun, on Docker's default bridge, where IPv6 is disabled in the
// container's network namespace (Docker sets net.ipv6.conf.all and .default
// disable_ipv6=1 on a network without IPv6). The nodes come up IPv4-only;
// the client container reaches the server by mesh name with curl (glibc's
// resolver, reading the resolv.conf Docker bind-mounts and meshinit
// rewrites in place), and after "docker stop" the file is Docker's again.

const (
	imageTUNClient = "meshinit-tunclient:test"
	// tunLog is the line a node logs when it comes up without IPv6.
	tunLog = "IPv6 is disabled here: the TUN interface carries the IPv4 mesh address only"
)

// tunFlags are what TUN mode needs from docker run.
var tunFlags = []string{"--cap-add", "NET_ADMIN", "--device", "/dev/net/tun", "-e", "MESH_NET=tun"}

func TestDockerTUNContainersTalkByName(t *testing.T) {
	suite(t)
	t.Parallel()
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		harness.Missing(t, "/dev/net/tun")
	}
	client := tunClientImage(t)
	m := newMesh(t, time.Minute)

	// The server: the example image, unchanged, with MESH_DNS off (the
	// failure was seen with and without it).
	server := container(t, "tun-web")
	docker(t, append(append(append([]string{"run", "-d", "--name", server, "--hostname", server, "-e", "MESH_DNS=off"},
		tunFlags...), dockerEnv(m)...), imageExample)...)
	web := m.OnlineNode(t, server, 60*time.Second)
	waitLog(t, server, "hello listening", 60*time.Second)
	if n := strings.Count(logs(t, server), tunLog); n != 1 {
		t.Errorf("server: %q logged %d times, want once", tunLog, n)
	}

	// The original resolv.conf: what Docker gives every container on this
	// network (a container without meshinit shows it).
	plain := container(t, "tun-plain")
	docker(t, "run", "--name", plain, client, "/bin/busybox", "true")
	original := copyOut(t, plain, "/etc/resolv.conf")

	name := container(t, "tun-client")
	docker(t, append(append(append([]string{"run", "-d", "--name", name, "--hostname", name}, tunFlags...),
		dockerEnv(m)...), client, "/bin/busybox", "sleep", "600")...)
	m.OnlineNode(t, name, 60*time.Second)
	waitLog(t, name, "resolv.conf points at the mesh resolver", 60*time.Second)

	// The interface carries the IPv4 mesh address only.
	if addrs := docker(t, "exec", name, "/bin/busybox", "ip", "addr", "show", "dev", "mesh0"); !strings.Contains(addrs, "inet 100.") ||
		strings.Contains(addrs, "inet6") {
		t.Errorf("mesh0 in the client container:\n%s", addrs)
	}
	// meshinit's resolver is the container's only nameserver.
	during := docker(t, "exec", name, "/bin/busybox", "cat", "/etc/resolv.conf")
	if !strings.Contains(during, "\nnameserver 127.0.0.153\n") || strings.Count(during, "\nnameserver ") != 1 {
		t.Errorf("resolv.conf while meshinit runs:\n%s", during)
	}
	// Mesh names resolve to the IPv4 address only.
	for _, host := range []string{web.Name, web.FQDN} {
		out := docker(t, "exec", name, "/usr/bin/getent", "ahosts", host)
		var got []string
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 0 && !slices.Contains(got, f[0]) {
				got = append(got, f[0])
			}
		}
		if !slices.Equal(got, []string{web.IPv4.String()}) {
			t.Errorf("getent ahosts %s in the client: %v, want only %v", host, got, web.IPv4)
		}
	}
	// A plain client reaches the server by name, short and fully qualified.
	for _, host := range []string{web.Name, web.FQDN} {
		code, out := dockerCode(t, "exec", name, "/usr/bin/curl", "-sS", "--max-time", "30", "http://"+host+":8080/")
		if code != 0 || !strings.Contains(out, "hello from "+web.FQDN) {
			t.Errorf("curl http://%s:8080/ in the client container: exit %d:\n%s", host, code, out)
		}
	}

	// docker stop: meshinit puts Docker's file back before the container
	// exits. Read from the stopped container with docker cp.
	docker(t, "stop", name)
	if after := copyOut(t, name, "/etc/resolv.conf"); after != original {
		t.Errorf("resolv.conf after docker stop:\n%q\nwant Docker's original:\n%q", after, original)
	}
	if out := logs(t, name); !strings.Contains(out, "resolv.conf restored") || strings.Count(out, tunLog) != 1 {
		t.Errorf("client log: want %q once and \"resolv.conf restored\":\n%s", tunLog, out)
	}
	m.WaitNodes(t, 30*time.Second, []string{web.Name})
}

// copyOut reads one file out of a (stopped) container with docker cp.
func copyOut(t *testing.T, name, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := dockerd.Command(ctx, "cp", name+":"+path, "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker cp %s:%s: %v: %s", name, path, err, &stderr)
	}
	tr := tar.NewReader(bytes.NewReader(out))
	if _, err := tr.Next(); err != nil {
		t.Fatalf("docker cp %s:%s: %v", name, path, err)
	}
	b, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	tunClientOnce sync.Once
	tunClientErr  error
)

// tunClientImage builds the client image once: meshinit, a static BusyBox
// (sh, sleep, cat, ip), and the host's curl and getent with the shared
// libraries they load (ldd), so name lookups go through glibc's own
// resolver as in any distribution image. (Debian 12's static BusyBox wget
// crashes, even for an IP literal.)
func tunClientImage(t *testing.T) string {
	t.Helper()
	tunClientOnce.Do(func() {
		tunClientErr = buildTUNClient(t)
	})
	if tunClientErr != nil {
		t.Fatalf("building %s: %v", imageTUNClient, tunClientErr)
	}
	return imageTUNClient
}

func buildTUNClient(t *testing.T) error {
	files := map[string]string{"root/bin/busybox": harness.LookPath(t, "busybox")}
	for _, prog := range []string{"curl", "getent"} {
		bin := harness.LookPath(t, prog)
		files["root/usr/bin/"+prog] = bin
		libs, err := sharedLibraries(bin)
		if err != nil {
			return err
		}
		for _, lib := range libs {
			files["root"+lib] = lib
		}
	}
	dir := t.TempDir()
	dockerfile := filepath.Join(dir, "Dockerfile")
	content := "ARG MESHINIT_IMAGE\nFROM ${MESHINIT_IMAGE} AS meshinit\nFROM scratch\n" +
		"COPY --from=meshinit /meshinit /meshinit\nCOPY root/ /\nENTRYPOINT [\"/meshinit\", \"--\"]\n"
	if err := os.WriteFile(dockerfile, []byte(content), 0o644); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return dockerd.Build(ctx, imageTUNClient, dockerfile, files, "MESHINIT_IMAGE="+imageMeshinit)
}

// sharedLibraries lists the absolute paths ldd prints for bin: its
// libraries and the dynamic loader.
func sharedLibraries(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return nil, err
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				libs = append(libs, f)
			}
		}
	}
	return libs, nil
}
