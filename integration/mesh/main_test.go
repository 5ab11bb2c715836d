// Package mesh is the end-to-end suite of the mesh node inside meshinit:
// real meshinit binaries, each PID 1 of its own PID namespace (unshare
// --pid --fork --mount-proc), against a real meshcoord (coordtest), on
// loopback or on network namespaces with 198.18.0.0/15 addresses. The
// command under meshinit is cmd/meshdemo (an HTTP server and client).
package mesh

import (
	"testing"

	"github.com/meshinit/meshinit/integration/internal/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }
