// Package ctlsock is meshinit's local control surface: the control socket
// that "meshinit status" and "meshinit logout" talk to (HTTP over a unix
// socket, mode 0600), and the optional health listener with /healthz and
// /readyz.
//
// The socket speaks a tiny HTTP API:
//
//	GET  /v1/status  -> Status (JSON)
//	POST /v1/logout  -> LogoutResult (JSON); the node leaves the mesh now,
//	                    the child keeps running
//
// Status is also the document "meshinit status --json" prints, so its
// fields are part of the user-facing contract.
package ctlsock
