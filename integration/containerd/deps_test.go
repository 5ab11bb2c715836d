package containerd_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/meshinit/meshinit/integration/internal/harness"
)

// TestMeshinitDoesNotLinkContainerd guards the split this suite relies on:
// the containerd client (grpc, otel, ~55 modules) is linked into these
// tests only, never into the meshinit binary users put in their images.
// It needs no root and no daemon.
func TestMeshinitDoesNotLinkContainerd(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./cmd/meshinit")
	cmd.Dir = harness.RepoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/meshinit: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/containerd/") || strings.HasPrefix(pkg, "google.golang.org/grpc") {
			t.Errorf("meshinit links %s", pkg)
		}
	}
}
