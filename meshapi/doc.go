// Package meshapi holds the wire types of the meshinit control protocol: the
// one source of truth shared by the node inside meshinit (the client) and
// meshcoord (the server). Nothing here does I/O beyond decoding; both sides
// import it and neither imports the other.
//
// The protocol is HTTP/1.1 or HTTP/2 with JSON bodies. docs/protocol.md is the
// letter of it; this package is its code. In short:
//
//	POST /v1/register        RegisterRequest  -> RegisterResponse
//	GET  /v1/map?since=V     newline-delimited MapMessage stream (Bearer node secret)
//	POST /v1/endpoints       EndpointsRequest -> 204 (Bearer node secret)
//	POST /v1/logout          -> LogoutResponse       (Bearer node secret)
//
// Errors are a non-2xx status with an ErrorBody. The admin API lives under
// /admin/v1 and is described in docs/protocol.md.
package meshapi
