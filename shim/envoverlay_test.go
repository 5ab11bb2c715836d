package shim

import (
	"slices"
	"testing"
)

func TestOverlayEnvLaterWinsWithoutDuplicates(t *testing.T) {
	base := []string{"PATH=/bin", "HTTP_PROXY=http://corp:3128", "HOME=/root"}
	extra := []string{"HTTP_PROXY=http://127.0.0.1:1055", "MESH_NAME=web.mesh.internal", "MESH_NAME=web2"}
	got := overlayEnv(base, extra)
	want := []string{"PATH=/bin", "HOME=/root", "HTTP_PROXY=http://127.0.0.1:1055", "MESH_NAME=web2"}
	if !slices.Equal(got, want) {
		t.Fatalf("overlayEnv = %q, want %q", got, want)
	}
	if got := overlayEnv(base, nil); !slices.Equal(got, base) {
		t.Fatalf("no extra: %q", got)
	}
}
