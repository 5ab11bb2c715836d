package meshapi

import (
	"net/netip"
	"time"
)

// MessageType tells a client how to apply a MapMessage.
type MessageType string

const (
	// MsgFull replaces the client's whole map: Self, Domain and every peer.
	// It is the first message of every stream that does not resume, and the
	// answer to a resume whose since is too old (or from before a
	// coordinator restart). A stream that resumes starts with a keepalive
	// carrying the client's since, then the deltas it missed.
	MsgFull MessageType = "full"
	// MsgUpsert adds peers, or replaces peers with the same ID.
	MsgUpsert MessageType = "upsert"
	// MsgRemove deletes the peers whose IDs are in Removed.
	MsgRemove MessageType = "remove"
	// MsgPresence patches the online state and last_seen of existing peers.
	MsgPresence MessageType = "presence"
	// MsgSelf replaces Self (the node was renamed, or its state changed).
	MsgSelf MessageType = "self"
	// MsgPolicy: the access policy changed. It replaces the node's Policy
	// (absent: no policy, allow all), and trims or widens its map to match:
	// the peers in Removed are gone, the peers in Peers are added.
	MsgPolicy MessageType = "policy"
	// MsgKeepalive carries no change; it proves the stream is alive. Its
	// Version is the last version the stream has delivered (the client's
	// version once it applied everything before), and it carries Epoch.
	MsgKeepalive MessageType = "keepalive"
)

// MapMessage is one line of the map stream (GET /v1/map?since=V).
//
// Versions grow by one or more with every change and never go back within
// one coordinator epoch. A client applies a delta only if it holds the map at
// some version before it; after applying it holds the map at Version. To
// resume after a disconnect it asks for since=<last Version it applied>; the
// coordinator answers with the deltas it missed, or with a full map.
type MapMessage struct {
	Type    MessageType `json:"type"`
	Version uint64      `json:"version"`
	// Epoch changes when the coordinator restarts; a client that sees a new
	// epoch must treat the message as a full map (it always is one).
	Epoch string `json:"epoch,omitempty"`

	Domain   string         `json:"domain,omitempty"`   // full
	Prefixes []netip.Prefix `json:"prefixes,omitempty"` // full
	Self     *Node          `json:"self,omitempty"`     // full, self
	Peers    []Peer         `json:"peers,omitempty"`    // full, upsert, policy
	Removed  []NodeID       `json:"removed,omitempty"`  // remove, policy
	Presence []Presence     `json:"presence,omitempty"` // presence

	// Policy is the access policy as this node enforces it (full, policy);
	// nil means no policy: every peer may open any flow to this node.
	Policy *NodePolicy `json:"policy,omitempty"`

	// KeepaliveInterval, in a full message, tells the client how often to
	// expect a line; a stream silent for three intervals is dead.
	KeepaliveInterval Duration `json:"keepalive_interval,omitzero"`
}

// Presence is an online/offline patch for one peer.
type Presence struct {
	ID       NodeID    `json:"id"`
	Online   bool      `json:"online"`
	LastSeen time.Time `json:"last_seen"`
}

// NodePolicy is the access policy as one node enforces it: the grants
// whose destination selects the node, without that destination. A peer may
// open a flow to the node if one rule's Src selects one of the peer's tags
// (or is "*") and one of its IP specs allows the flow. An empty Rules list
// allows no new inbound flow at all.
type NodePolicy struct {
	// Version is the policy's version in the coordinator (it grows by one
	// with every change).
	Version uint64       `json:"version"`
	Rules   []PolicyRule `json:"rules"`
}

// PolicyRule is one inbound rule: selectors ("tag:ci", "*") and port specs
// ("tcp:5432", "udp:53,5353", "tcp:8000-8999", "icmp", "*") as in the
// policy language.
type PolicyRule struct {
	Src []string `json:"src"`
	IP  []string `json:"ip"`
}
