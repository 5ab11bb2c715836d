package relayproto

import (
	"net/http"
	"strings"
)

// Upgrade handshake. The node sends
//
//	GET /v1/relay HTTP/1.1
//	Authorization: Bearer <node secret>
//	Connection: Upgrade
//	Upgrade: meshrelay
//
// and the relay answers 101 Switching Protocols with "Upgrade: meshrelay";
// frames follow at once in both directions. For WebSocket the node sends
// "Upgrade: websocket" with Sec-WebSocket-Key, Sec-WebSocket-Version: 13 and
// Sec-WebSocket-Protocol: meshrelay, and the same frames travel inside
// binary messages.
const (
	// Protocol is the Upgrade token and the WebSocket subprotocol.
	Protocol = "meshrelay"
	// HeaderSTUNPort, on the 101 answer, names the UDP port of the
	// coordinator's STUN responder (absent when it has none). It is on the
	// host the node reached the relay at.
	HeaderSTUNPort = "Meshrelay-Stun-Port"
)

// Upgrade kinds a request asks for.
const (
	KindRaw       = "meshrelay"
	KindWebSocket = "websocket"
)

// RequestedKind tells which upgrade r asks for: KindRaw, KindWebSocket, or
// "" for none.
func RequestedKind(h http.Header) string {
	if !headerHasToken(h, "Connection", "upgrade") {
		return ""
	}
	switch {
	case headerHasToken(h, "Upgrade", Protocol):
		return KindRaw
	case headerHasToken(h, "Upgrade", "websocket"):
		return KindWebSocket
	}
	return ""
}

// headerHasToken reports whether a comma-separated header holds token
// (case-insensitive).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
