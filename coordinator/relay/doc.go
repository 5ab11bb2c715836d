// Package relay is the packet relay served by meshcoord at GET /v1/relay:
// nodes that cannot reach each other over UDP send WireGuard packets to
// each other's public keys through it, over the coordinator's own HTTP(S)
// port (an HTTP/1.1 upgrade, or WebSocket for proxies that pass only
// that). The wire format is meshapi/relayproto; docs/protocol.md is the
// contract.
//
// Each connection has one reader and one writer goroutine. A reader never
// waits for another connection: it puts packets in the destination's
// bounded queue, which drops its oldest packet when full, and the
// destination's writer sends them with a write deadline. So a slow or
// stuck receiver costs only its own packets.
//
// With several coordinator replicas, each relay also links with the
// others' relays (mesh.go: links, presence, forwarding; meshaccept.go and
// meshdial.go: the two ends of a link), so that a packet reaches a node
// connected to another replica in one hop.
package relay
