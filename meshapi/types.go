package meshapi

import (
	"net/netip"
	"time"
)

// NodeID identifies a node for its whole life. IDs are never reused.
type NodeID uint64

// RegisterRequest is the body of POST /v1/register.
type RegisterRequest struct {
	// AuthKey is the full auth key as printed by "meshcoord keys create".
	AuthKey string `json:"auth_key"`
	// Hostname is the node's wish for a name; the coordinator sanitises it to a
	// DNS label and makes it unique in the mesh.
	Hostname string `json:"hostname"`
	// PublicKey is the node's WireGuard public key.
	PublicKey Key `json:"public_key"`
	// Endpoints are UDP addresses at which peers may reach the node, best first.
	Endpoints []netip.AddrPort `json:"endpoints,omitempty"`
	// Secret is the node secret the node chose (NewNodeSecret), sent with
	// every attempt of one registration: a retry with the same secret, auth
	// key and public key gets the node the first attempt registered, never
	// a second one. Optional: without it the coordinator makes the secret,
	// and a retry whose first attempt was registered makes another node.
	Secret string `json:"secret,omitempty"`
	// NoIPv6 says the node cannot carry IPv6 (a TUN interface in a network
	// namespace where IPv6 is disabled): the coordinator then gives it no
	// IPv6 address, so no peer resolves or routes one to it. Optional:
	// absent (false) means the node takes both addresses.
	NoIPv6 bool `json:"no_ipv6,omitempty"`
}

// RegisterResponse is the answer to a successful registration.
type RegisterResponse struct {
	// Node is the registered node as the mesh sees it.
	Node Node `json:"node"`
	// Secret authenticates every later call of this node. The node keeps it in
	// memory only; the coordinator stores a hash.
	Secret string `json:"secret"`
	// Domain is the mesh's base domain; FQDNs are name + "." + Domain.
	Domain string `json:"domain"`
	// Prefixes are the mesh's address ranges (an IPv4 and an IPv6 prefix).
	Prefixes []netip.Prefix `json:"prefixes"`
}

// EndpointsRequest is the body of POST /v1/endpoints: the node's current
// candidate UDP endpoints, replacing the previous set.
type EndpointsRequest struct {
	Endpoints []netip.AddrPort `json:"endpoints"`
}

// LogoutRequest is the optional body of POST /v1/logout. The secret alone
// says which node logs out; a client may also name its node, and the
// coordinator refuses (403 forbidden) if that is not the secret's node.
type LogoutRequest struct {
	NodeID NodeID `json:"node_id,omitempty"`
}

// LogoutResponse is the answer to POST /v1/logout.
type LogoutResponse struct {
	// Deleted is true when the node was removed at once (ephemeral nodes);
	// false when it was only marked logged out.
	Deleted bool `json:"deleted"`
}

// Node is a member of the mesh as the admin API and a node's own map see it.
// "meshcoord nodes list --json" prints an array of these.
type Node struct {
	ID        NodeID           `json:"id"`
	Name      string           `json:"name"` // DNS label, unique in the mesh
	FQDN      string           `json:"fqdn"`
	Hostname  string           `json:"hostname"` // as the node asked for it
	IPv4      netip.Addr       `json:"ipv4"`
	IPv6      netip.Addr       `json:"ipv6,omitzero"` // absent: the node has no IPv6 (registered with no_ipv6)
	PublicKey Key              `json:"public_key"`
	Endpoints []netip.AddrPort `json:"endpoints"`
	Online    bool             `json:"online"`
	LastSeen  time.Time        `json:"last_seen"`
	Ephemeral bool             `json:"ephemeral"`
	Tags      []string         `json:"tags"`
	Created   time.Time        `json:"created"`
	KeyID     string           `json:"key_id"`
	// LoggedOut is set when a non-ephemeral node logged out or was expired by
	// an admin: it stays listed but may no longer use the mesh.
	LoggedOut bool `json:"logged_out"`
	// GCDeadline is when an offline ephemeral node will be collected, if it
	// does not come back first. Zero for online or non-ephemeral nodes.
	GCDeadline time.Time `json:"gc_deadline,omitzero"`
}

// Peer is another node as a map stream shows it.
type Peer struct {
	ID        NodeID           `json:"id"`
	Name      string           `json:"name"`
	FQDN      string           `json:"fqdn"`
	IPv4      netip.Addr       `json:"ipv4"`
	IPv6      netip.Addr       `json:"ipv6,omitzero"` // absent: the peer has no IPv6
	PublicKey Key              `json:"public_key"`
	Endpoints []netip.AddrPort `json:"endpoints"`
	Online    bool             `json:"online"`
	LastSeen  time.Time        `json:"last_seen"`
	Tags      []string         `json:"tags"`
}

// Peer returns the map-stream view of n.
func (n *Node) Peer() Peer {
	return Peer{
		ID: n.ID, Name: n.Name, FQDN: n.FQDN, IPv4: n.IPv4, IPv6: n.IPv6,
		PublicKey: n.PublicKey, Endpoints: n.Endpoints, Online: n.Online,
		LastSeen: n.LastSeen, Tags: n.Tags,
	}
}
