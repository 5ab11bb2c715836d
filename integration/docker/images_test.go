package docker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/internal/testcert"
	"github.com/meshinit/meshinit/meshapi"
)

// The images themselves: what "make image" builds from the Dockerfiles.

func TestImageMeshinitIsTheBinaryOnly(t *testing.T) {
	suite(t)
	t.Parallel()
	var img []struct {
		Config struct {
			Entrypoint []string
			Cmd        []string
			Labels     map[string]string
		}
		RootFS struct{ Layers []string }
	}
	if err := json.Unmarshal([]byte(docker(t, "image", "inspect", imageMeshinit)), &img); err != nil || len(img) != 1 {
		t.Fatalf("image inspect %s: %v", imageMeshinit, err)
	}
	c := img[0].Config
	if strings.Join(c.Entrypoint, " ") != "/meshinit --" {
		t.Errorf("entrypoint %q, want [/meshinit --]", c.Entrypoint)
	}
	for _, label := range []string{"org.opencontainers.image.title", "org.opencontainers.image.version",
		"org.opencontainers.image.revision", "org.opencontainers.image.source", "org.opencontainers.image.description"} {
		if c.Labels[label] == "" {
			t.Errorf("label %s missing (labels: %v)", label, c.Labels)
		}
	}
	if n := len(img[0].RootFS.Layers); n != 1 {
		t.Errorf("%d layers, want 1 (FROM scratch, one COPY)", n)
	}
	// The image alone has no command to run after its "--": meshinit must
	// say so and fail, not exit 0 as if an app had run.
	code, out := dockerCode(t, "run", "--rm", imageMeshinit)
	if code == 0 {
		t.Errorf("meshinit image without a command exited 0, want a usage error; output:\n%s", out)
	}
}

// TestImageMeshcoordServesNodes runs the coordinator image as documented:
// HTTPS with a certificate from a private CA (made here, for the address
// the container gets) mounted at /etc/meshcoord/tls, administered with
// docker exec; a meshinit container that trusts the CA (MESH_COORDINATOR_CA)
// joins it. Without a certificate the image refuses to start: it never
// serves plain HTTP on its addresses by default.
func TestImageMeshcoordServesNodes(t *testing.T) {
	suite(t)
	t.Parallel()
	code, out := dockerCode(t, "run", "--rm", "--name", container(t, "image-coord-nocert"), imageCoord)
	if code == 0 || !strings.Contains(out, "TLS certificate") {
		t.Errorf("the coordinator image without a certificate exited %d, want a refusal naming the TLS certificate; output:\n%s", code, out)
	}

	// A network of the test's own, so the coordinator's address is known
	// before it starts (docker picks its subnet from the suite's pool in
	// 198.18.0.0/15) and goes into the certificate.
	network, ip := userNetwork(t)
	ca := testcert.NewCA(t, "meshinit docker suite CA")
	cert := ca.Issue(t, ip.AsSlice())
	tlsDir := t.TempDir()
	testcert.WriteFile(t, tlsDir, "tls.crt", cert.CertPEM, 0o644)
	testcert.WriteFile(t, tlsDir, "tls.key", cert.KeyPEM, 0o600)
	caFile := testcert.WriteFile(t, t.TempDir(), "ca.pem", ca.PEM, 0o644)

	coord := container(t, "image-coord")
	docker(t, "run", "-d", "--name", coord, "--network", network, "--ip", ip.String(),
		"-v", tlsDir+":/etc/meshcoord/tls:ro", imageCoord)
	waitLog(t, coord, "msg=listening url=https://", 30*time.Second)
	url := fmt.Sprintf("https://%s", netip.AddrPortFrom(ip, 8480))
	var key meshapi.KeyCreateResponse
	out = docker(t, "exec", coord, "/meshcoord", "keys", "create", "--ephemeral", "--reusable", "--json")
	if err := json.Unmarshal([]byte(out), &key); err != nil || key.Key == "" {
		t.Fatalf("keys create --json in the container printed %q: %v", out, err)
	}
	nodes := func() []meshapi.Node {
		var nodes []meshapi.Node
		out := docker(t, "exec", coord, "/meshcoord", "nodes", "list", "--json")
		if err := json.Unmarshal([]byte(out), &nodes); err != nil {
			t.Fatalf("nodes list --json printed %q: %v", out, err)
		}
		return nodes
	}

	node := container(t, "image-node")
	docker(t, "run", "-d", "--name", node, "--hostname", node, "--network", network, "-e", "MESH_AUTHKEY="+key.Key,
		"-e", "MESH_COORDINATOR="+url, "-v", caFile+":/etc/meshinit/ca.pem:ro", "-e", "MESH_COORDINATOR_CA=/etc/meshinit/ca.pem",
		imageTestapp, "sleep")
	harness.Eventually(t, 60*time.Second, "node online in the containerised coordinator", func() (bool, string) {
		ns := nodes()
		return len(ns) == 1 && ns[0].Name == node && ns[0].Online, fmt.Sprintf("nodes: %+v", ns)
	})
	docker(t, "stop", node)
	if ns := nodes(); len(ns) != 0 {
		t.Errorf("after docker stop the coordinator still lists %+v", ns)
	}
}

// userNetwork creates a docker network for the test with a subnet of its
// choosing (docker allows --ip only there), 198.19.255.0/24: the last /24 of
// the suite's pool for user networks (scripts/runtimes.sh), inside
// 198.18.0.0/15. It is removed when the test ends, after the test's
// containers (whose cleanups, registered later, run first). It returns the
// name and an address for a container's --ip.
func userNetwork(t *testing.T) (string, netip.Addr) {
	t.Helper()
	name := strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")) + "-net"
	docker(t, "network", "create", "--driver", "bridge", "--subnet", "198.19.255.0/24", "--gateway", "198.19.255.1", name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := dockerd.Output(ctx, "network", "rm", name); err != nil {
			t.Errorf("docker network rm %s: %v %s", name, err, out)
		}
	})
	return name, netip.MustParseAddr("198.19.255.10")
}
