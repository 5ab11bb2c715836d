// Package controlclient is the node's side of the meshinit control protocol
// (docs/protocol.md): it registers with an auth key, follows the map stream
// (full map, then versioned deltas, resumed with since=V after a
// reconnect), reports the node's UDP endpoints when they change, and logs the
// node out.
//
// It holds the node secret in memory only and never logs it or the auth key.
// Server messages are decoded leniently (unknown fields are ignored, so an
// older node keeps working against a newer coordinator), but every body and
// stream line is size-bounded.
//
// The package knows nothing about WireGuard: NetMap.Apply turns each message
// into a Change (peers added or changed, peers removed, presence patches)
// that the caller applies to its data plane one peer at a time.
package controlclient
