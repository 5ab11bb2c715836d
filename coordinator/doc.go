// Package coordinator is meshcoord's control server: auth keys,
// registration, names and addresses, the map streams that tell every node
// its peers, presence, logout and the delayed ephemeral GC, plus the admin
// API, events and metrics.
//
// This package is the HTTP APIs and the wiring. The handlers live on two
// small types, nodeAPI (register, map streams, endpoints, logout) and
// adminAPI (keys, nodes, events, policy), which only turn HTTP into the
// Server's commands and reads; each concern below is a package of its own
// with a narrow seam:
//
//   - mesh: the state (nodes, keys, addresses, names, the policy document,
//     counters) and its rules. Every command makes its change as store ops,
//     applied to memory as it goes; Apply follows changes made elsewhere.
//     A mesh.Listener hears every effect, whoever made the change.
//   - commit: the store's single writer (group commit, bounded queue).
//   - maps: the change log that feeds the map streams: one line per
//     change, derived from the mesh's effects, in a ring every stream reads
//     at its own cursor; full maps from its own table of peers.
//   - eventlog: the stored lifecycle events, for "events --follow".
//   - presence: who holds a map stream, and the reconnect grace.
//   - gc: one timer per GC deadline.
//   - clock: the time of every lifecycle rule (a fake one in tests).
//   - replica: on PostgreSQL, following the change log and the replicas'
//     heartbeats (replica.go and replicawriter.go wire it in: see below).
//
// One lock (Server.mu, see core.go) orders the changes: a command runs on
// the mesh and its ops are queued for the store under it, so the store's
// order is memory's. The listener (fanout) feeds maps, gc, presence and
// the relay under the same lock; the writer hands committed events to the
// event log. Nothing is logged while the lock is held.
//
// On a PostgreSQL store the server is one replica among any number on the
// same database (docs/replicas.md): the same commands run, but under the
// database's mesh lock after catching up with the change log, by the
// replica's writer; changes of other replicas reach the mesh through Apply.
// core.go's change and settle are the doors to either.
package coordinator
