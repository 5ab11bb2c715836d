package coordinator

import (
	"net/http"
	"net/netip"
	"time"
	"unicode/utf8"

	"github.com/meshinit/meshinit/coordinator/authkey"
	"github.com/meshinit/meshinit/coordinator/commit"
	"github.com/meshinit/meshinit/coordinator/mesh"
	"github.com/meshinit/meshinit/meshapi"
)

// Limits on what a node may send.
const (
	maxHostnameBytes = 255
	maxEndpoints     = 16
)

func validateEndpoints(eps []netip.AddrPort) *apiError {
	if len(eps) > maxEndpoints {
		return badRequest("endpoints: %d given, at most %d allowed", len(eps), maxEndpoints)
	}
	for i, ep := range eps {
		if !ep.IsValid() || ep.Port() == 0 || ep.Addr().IsUnspecified() || ep.Addr().Zone() != "" {
			return badRequest("endpoints[%d] %q: want a UDP address ip:port with a non-zero port", i, ep)
		}
	}
	return nil
}

// Results of a registration in the metrics besides error codes: a new node,
// or the answer repeated to a retry.
const (
	registeredNew      = "ok"
	registeredRepeated = "repeated"
)

// register checks the request's form, then runs the mesh's registration
// (mesh.Register: a new node, or the same node again for a retry). It
// returns the answer, the batch to wait for, and the result for the
// metrics.
func (s *Server) register(req *meshapi.RegisterRequest) (*meshapi.RegisterResponse, *commit.Batch, string, *apiError) {
	if len(req.Hostname) > maxHostnameBytes || !utf8.ValidString(req.Hostname) {
		return nil, nil, "", badRequest("hostname: want valid UTF-8 of at most %d bytes", maxHostnameBytes)
	}
	if req.PublicKey.IsZero() {
		return nil, nil, "", badRequest("public_key: missing; send the node's WireGuard public key (base64)")
	}
	if e := validateEndpoints(req.Endpoints); e != nil {
		return nil, nil, "", e
	}
	r := &mesh.Registration{Hostname: req.Hostname, PublicKey: req.PublicKey, Endpoints: req.Endpoints, NoIPv6: req.NoIPv6}
	var err error
	if r.Key, err = authkey.Parse(req.AuthKey); err != nil {
		return nil, nil, "", errorf(http.StatusUnauthorized, meshapi.ErrKeyInvalid, "%v", err)
	}
	secret := req.Secret
	if secret == "" {
		secret, r.SecretHash = authkey.NewNodeSecret()
	} else if r.SecretHash, err = authkey.ParseNodeSecret(secret); err != nil {
		return nil, nil, "", badRequest("secret: %v (make it with 32 random bytes: %s<64 lowercase hex digits>)", err, meshapi.NodeSecretPrefix)
	}
	var resp *meshapi.RegisterResponse
	result := registeredNew
	b, e := s.change(func(m *mesh.Mesh, now time.Time) (mesh.Change, *apiError) {
		n, repeated, ch, e := m.Register(r, now)
		if e != nil {
			return nil, e
		}
		if repeated {
			result = registeredRepeated
		}
		resp = &meshapi.RegisterResponse{Node: n.View(), Secret: secret, Domain: s.cfg.BaseDomain, Prefixes: m.Prefixes()}
		return ch, nil
	})
	return resp, b, result, e
}
