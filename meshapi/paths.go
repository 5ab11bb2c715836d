package meshapi

// Node-facing endpoints. Every one except PathRegister needs
// "Authorization: Bearer <node secret>".
const (
	PathRegister  = "/v1/register"
	PathMap       = "/v1/map"
	PathEndpoints = "/v1/endpoints"
	PathLogout    = "/v1/logout"
	// PathRelay is the packet relay: an HTTP/1.1 upgrade or a WebSocket
	// (see meshapi/relayproto).
	PathRelay = "/v1/relay"
)

// Query parameters of GET /v1/map. A reconnecting client sends both: since
// is the Version of the last message it applied, epoch the Epoch of the
// stream it came from. A since from another epoch gets a full map.
const (
	QuerySince = "since"
	QueryEpoch = "epoch"
)

// Admin endpoints, served on the admin socket, and over HTTP(S) only with
// "Authorization: Bearer <admin token>".
const (
	PathAdminKeys   = "/admin/v1/keys"   // GET list, POST create; DELETE /admin/v1/keys/{id} revokes
	PathAdminNodes  = "/admin/v1/nodes"  // GET list; GET|DELETE /{id|name}; POST /{id|name}/expire, /{id|name}/rename
	PathAdminEvents = "/admin/v1/events" // GET ?follow=1&since=SEQ: newline-delimited Event stream
	PathAdminPolicy = "/admin/v1/policy" // GET the policy in force; PUT a new one (the document as the body); DELETE it
	// PathAdminPolicyCheck: POST a document to parse it and run its tests without putting it in force.
	PathAdminPolicyCheck = "/admin/v1/policy/check"
)

// Operational endpoints.
const (
	PathHealth  = "/healthz"
	PathMetrics = "/metrics"
)

// ContentTypeStream is the media type of the map and event streams: one JSON
// object per line (NDJSON).
const ContentTypeStream = "application/x-ndjson"

// MaxBodyBytes bounds every JSON request body. Bodies are small; anything
// larger is refused with 413 before it is parsed.
const MaxBodyBytes = 64 << 10

// MaxStreamLineBytes bounds one line of a map or event stream. A full map of
// 10 000 peers is a few MiB; clients must accept lines up to this size.
const MaxStreamLineBytes = 64 << 20
