package meshapi

import "time"

// KeyCreateRequest is the body of POST /admin/v1/keys.
type KeyCreateRequest struct {
	Ephemeral bool     `json:"ephemeral"`
	Reusable  bool     `json:"reusable"`
	Tags      []string `json:"tags,omitempty"`
	// Expiry is how long the key stays usable from now; zero means never.
	Expiry Duration `json:"expiry,omitzero"`
	// EphemeralTimeout overrides the server's inactivity timeout for the
	// ephemeral nodes this key registers; zero means the server default.
	EphemeralTimeout Duration `json:"ephemeral_timeout,omitzero"`
	Description      string   `json:"description,omitempty"`
}

// KeyState is a key's usability at the time it was listed.
type KeyState string

const (
	KeyValid   KeyState = "valid"
	KeyExpired KeyState = "expired"
	KeyRevoked KeyState = "revoked"
	KeyUsed    KeyState = "used" // a one-off key that has registered its node
)

// AuthKey describes an auth key. It never holds the secret part.
type AuthKey struct {
	ID               string    `json:"id"`
	Description      string    `json:"description"`
	Ephemeral        bool      `json:"ephemeral"`
	Reusable         bool      `json:"reusable"`
	Tags             []string  `json:"tags"`
	Created          time.Time `json:"created"`
	Expires          time.Time `json:"expires,omitzero"`
	EphemeralTimeout Duration  `json:"ephemeral_timeout,omitzero"`
	Uses             int       `json:"uses"`
	Revoked          time.Time `json:"revoked,omitzero"`
	State            KeyState  `json:"state"`
}

// KeyCreateResponse is the answer to POST /admin/v1/keys. Key is the only
// time the full key is ever shown.
type KeyCreateResponse struct {
	AuthKey
	Key string `json:"key"`
}

// RenameRequest is the body of POST /admin/v1/nodes/{id|name}/rename.
type RenameRequest struct {
	Name string `json:"name"`
}

// NodeActionResponse is the answer to DELETE /admin/v1/nodes/{ref} and
// POST /admin/v1/nodes/{ref}/expire and /rename: the node as it was left.
// Deleted says it is gone (delete; expire of an ephemeral node).
type NodeActionResponse struct {
	Node    Node `json:"node"`
	Deleted bool `json:"deleted"`
}

// EventType names a lifecycle change.
type EventType string

const (
	EventRegistered EventType = "registered"
	EventOnline     EventType = "online"
	EventOffline    EventType = "offline"
	EventLoggedOut  EventType = "logged_out" // non-ephemeral logout or admin expire
	EventRenamed    EventType = "renamed"
	EventDeleted    EventType = "deleted"
)

// DeleteReason says why a node was deleted.
type DeleteReason string

const (
	ReasonLogout   DeleteReason = "logout"
	ReasonGC       DeleteReason = "gc"
	ReasonAdmin    DeleteReason = "admin"
	ReasonReplaced DeleteReason = "replaced"
)

// Event is one line of GET /admin/v1/events.
type Event struct {
	Seq    uint64       `json:"seq"`
	Time   time.Time    `json:"time"`
	Type   EventType    `json:"type"`
	NodeID NodeID       `json:"node_id"`
	Name   string       `json:"name"`
	Reason DeleteReason `json:"reason,omitempty"` // deleted only
	// Detail is free text for humans (the new name of a rename, say).
	Detail string `json:"detail,omitempty"`
}

// PolicyResponse is the answer to GET /admin/v1/policy and to a successful
// PUT: the policy in force. Version 0 and an empty Source mean no policy
// (every node may reach every other).
type PolicyResponse struct {
	Version uint64    `json:"version"`
	Source  string    `json:"source"`
	Updated time.Time `json:"updated,omitzero"`
	// Hash identifies Source (hex of the first 8 bytes of its SHA-256).
	Hash string `json:"hash,omitempty"`
}

// PolicyCheckResponse is the answer to POST /admin/v1/policy/check: the
// document parsed and its tests passed (problems are 400 errors instead).
type PolicyCheckResponse struct {
	Grants int    `json:"grants"`
	Tests  int    `json:"tests"`
	Hash   string `json:"hash"`
}
