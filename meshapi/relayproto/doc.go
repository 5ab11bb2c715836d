// Package relayproto is the wire format of the relay in meshcoord
// (GET /v1/relay): the length-prefixed frames both sides exchange, the
// HTTP/1.1 upgrade that starts them, and a minimal RFC 6455 WebSocket
// carriage for networks whose proxies pass only WebSocket. The server
// (coordinator/relay) and the node's bind (node/dataplane) both import it.
// docs/protocol.md is the contract.
package relayproto
