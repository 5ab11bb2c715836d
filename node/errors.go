package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/meshinit/meshinit/node/controlclient"
)

// Stage names the step of Start that failed.
type Stage string

const (
	StageConfig   Stage = "config"   // bad configuration, key generation
	StageRegister Stage = "register" // registering with the auth key
	StageMap      Stage = "map"      // waiting for the first map
	StageDevice   Stage = "device"   // creating the WireGuard device
	StageProxy    Stage = "proxy"    // starting the local proxy
	StageLocal    Stage = "local"    // local forwarders and resolver (MESH_CONNECT, MESH_DNS)
	StageWaitFor  Stage = "wait-for" // waiting for the MESH_WAIT_FOR peers
)

// Kind says what kind of failure stopped Start, for the message meshinit
// prints before it exits 125.
type Kind string

const (
	KindKeyRefused  Kind = "key refused"             // expired, revoked, used or unknown key
	KindUnreachable Kind = "coordinator unreachable" // no answer from the coordinator
	KindTimeout     Kind = "timeout"                 // MESH_WAIT_TIMEOUT ran out
	KindInterrupted Kind = "interrupted"             // a stop signal arrived meanwhile
	KindRefused     Kind = "refused"                 // another answer from the coordinator (4xx/5xx)
	KindLocal       Kind = "local"                   // device, proxy, configuration
	KindPeersSilent Kind = "peers silent"            // MESH_WAIT_FOR peers did not answer in time
)

// StartError is why Start failed. Its message says which failure it was
// and what to do about it.
type StartError struct {
	Stage Stage
	Kind  Kind
	// KeyReason is "expired", "revoked", "used" or "invalid" for KindKeyRefused.
	KeyReason string
	URL       string
	Err       error
}

func (e *StartError) Error() string {
	switch e.Kind {
	case KindKeyRefused:
		hint := map[string]string{
			"expired": "the key has expired",
			"revoked": "the key was revoked",
			"used":    "the key is a one-off key that has already registered a node",
			"invalid": "the coordinator does not know this key",
		}[e.KeyReason]
		return fmt.Sprintf("auth key refused (%s): %s: %v; create a new key with \"meshcoord keys create\" and pass it in MESH_AUTHKEY or MESH_AUTHKEY_FILE", e.KeyReason, hint, e.Err)
	case KindUnreachable:
		return fmt.Sprintf("coordinator unreachable while %s: %v; check that meshcoord runs and that MESH_COORDINATOR (%s) is right, or raise MESH_WAIT_TIMEOUT", e.Stage.doing(), e.Err, e.URL)
	case KindTimeout:
		return fmt.Sprintf("timeout: the mesh did not come up within MESH_WAIT_TIMEOUT (still %s): %v", e.Stage.doing(), e.Err)
	case KindInterrupted:
		return fmt.Sprintf("interrupted by a stop signal while %s", e.Stage.doing())
	case KindPeersSilent:
		return fmt.Sprintf("MESH_WAIT_FOR: %v, within MESH_WAIT_TIMEOUT; check that the peer runs and listens on that port, or raise MESH_WAIT_TIMEOUT", e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Stage.doing(), e.Err)
}

func (e *StartError) Unwrap() error { return e.Err }

// localError is a failure of this machine's side of Start (key generation,
// the device, the proxy), not of the coordinator.
func localError(stage Stage, err error) *StartError {
	return &StartError{Stage: stage, Kind: KindLocal, Err: err}
}

func (s Stage) doing() string {
	switch s {
	case StageRegister:
		return "registering"
	case StageMap:
		return "waiting for the first map"
	case StageDevice:
		return "bringing the WireGuard device up"
	case StageProxy:
		return "starting the proxy"
	case StageLocal:
		return "opening local ports"
	case StageWaitFor:
		return "waiting for the MESH_WAIT_FOR peers"
	}
	return "starting"
}

// classifyStartError turns a failure of a coordinator-facing stage into a
// StartError of the right kind.
func classifyStartError(ctx context.Context, stage Stage, url string, err error) *StartError {
	e := &StartError{Stage: stage, URL: url, Err: err}
	var unreachable *controlclient.UnreachableError
	switch reason, ok := controlclient.KeyRefusal(err); {
	case ok:
		e.Kind, e.KeyReason = KindKeyRefused, reason
	case errors.As(err, &unreachable):
		e.Kind = KindUnreachable
	case errors.Is(ctx.Err(), context.Canceled):
		e.Kind = KindInterrupted
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		e.Kind = KindTimeout
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		e.Kind = KindTimeout
	default:
		e.Kind = KindRefused
	}
	return e
}
