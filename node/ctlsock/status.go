package ctlsock

import (
	"context"
	"net/netip"
	"time"
)

// Node states, as Status.State reports them.
const (
	StateStarting  = "starting"   // registering, waiting for the map or the device
	StateUp        = "up"         // in the mesh: the child has been (or is being) started
	StateLoggedOut = "logged_out" // logged out (meshinit logout, the stop path) or removed by the coordinator
	StateStopped   = "stopped"    // shut down
)

// Status is what "meshinit status --json" prints.
type Status struct {
	State     string     `json:"state"`
	ID        uint64     `json:"id,omitempty"`
	Name      string     `json:"name"`
	FQDN      string     `json:"fqdn"`
	IPv4      netip.Addr `json:"ipv4,omitzero"`
	IPv6      netip.Addr `json:"ipv6,omitzero"`
	Ephemeral bool       `json:"ephemeral"`
	// Net is the data-plane mode, "userspace" or "tun".
	Net string `json:"net"`
	// Proxy is the local SOCKS5/HTTP proxy address ("" when off).
	Proxy string `json:"proxy,omitempty"`
	// Endpoints are the UDP addresses reported to the coordinator.
	Endpoints   []netip.AddrPort  `json:"endpoints"`
	Coordinator CoordinatorStatus `json:"coordinator"`
	// Policy is the access policy as this node enforces it.
	Policy PolicyStatus `json:"policy"`
	// Relay is the node's connection to the coordinator's relay (absent
	// when the data plane is not up).
	Relay *RelayStatus `json:"relay,omitempty"`
	Peers []PeerStatus `json:"peers"`
}

// RelayStatus is the node's one relay connection.
type RelayStatus struct {
	// State is "connecting", "connected" or "off".
	State string    `json:"state"`
	Since time.Time `json:"since,omitzero"`
	// Kind is "meshrelay" (HTTP/1.1 upgrade) or "websocket".
	Kind      string `json:"kind,omitempty"`
	LastError string `json:"last_error,omitempty"`
	// Connects counts successful connections (1 + reconnects).
	Connects int `json:"connects"`
	// Dropped counts packets not sent: relay down or its queue full.
	Dropped uint64 `json:"dropped"`
}

// PolicyStatus is the node's side of the access policy.
type PolicyStatus struct {
	// Version is the coordinator's policy version in force (0: none).
	Version uint64 `json:"version"`
	// Enforcing is true while a policy is in force: inbound flows need a
	// rule. False means every peer may open any flow (but never to
	// meshinit's own listeners).
	Enforcing bool `json:"enforcing"`
	// Rules is the number of inbound rules.
	Rules int `json:"rules"`
	// Drops counts inbound packets dropped, by reason: policy,
	// own_listener, not_local, fragment, malformed, unknown_peer.
	Drops map[string]uint64 `json:"drops"`
	// Flows is the number of outbound flows tracked for their replies.
	Flows int `json:"flows"`
}

// CoordinatorStatus is the health of the node's link to the coordinator.
type CoordinatorStatus struct {
	URL string `json:"url"`
	// State is "connecting", "connected", "reconnecting" or "stopped".
	State      string    `json:"state"`
	Since      time.Time `json:"since,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
	Reconnects int       `json:"reconnects"`
	MapVersion uint64    `json:"map_version"`
}

// PeerStatus is one peer: what the map says and what the tunnel saw.
type PeerStatus struct {
	ID     uint64     `json:"id"`
	Name   string     `json:"name"`
	FQDN   string     `json:"fqdn"`
	IPv4   netip.Addr `json:"ipv4,omitzero"`
	IPv6   netip.Addr `json:"ipv6,omitzero"`
	Online bool       `json:"online"`
	// Path is how packets reach the peer: "direct" (UDP to Endpoint),
	// "relay" (through the coordinator), "candidates" (no relay: copies to
	// every candidate endpoint) or "none".
	Path string `json:"path,omitempty"`
	// PathReason says why, in words.
	PathReason string `json:"path_reason,omitempty"`
	// Endpoint is the peer's UDP address while the path is direct.
	Endpoint      string    `json:"endpoint,omitempty"`
	LastHandshake time.Time `json:"last_handshake,omitzero"`
	RxBytes       uint64    `json:"rx_bytes"`
	TxBytes       uint64    `json:"tx_bytes"`
}

// LogoutResult is the answer to POST /v1/logout.
type LogoutResult struct {
	// Deleted is true when the coordinator deleted the node at once
	// (ephemeral); false when it only marked it logged out.
	Deleted bool `json:"deleted"`
	// Already is set when the node had logged out before this call.
	Already bool `json:"already,omitempty"`
}

// Backend is what the control socket and the health listener serve: the
// running node.
type Backend interface {
	Status() Status
	// Logout leaves the mesh now; the child keeps running.
	Logout(ctx context.Context) (LogoutResult, error)
	// Ready reports whether the node is up, and why not.
	Ready() (ok bool, why string)
}
