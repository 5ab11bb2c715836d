// Package coordinator is meshcoord's control server: auth keys, registration,
// IPAM and names, the map broker that streams peers to every node, presence,
// logout and the delayed ephemeral GC, plus the admin API, events and metrics.
//
// Shape: the authoritative state lives in memory behind one mutex (Server.mu).
// Every change is made there, in one critical section that also
//
//   - queues the matching store writes for the single writer goroutine
//     (writer.go), which commits them in order, in batches;
//   - appends one encoded delta line to the map log (deltalog), which every
//     map stream copies to its connection: a change costs one encoding and
//     O(peers) small writes, never O(peers) full maps;
//   - appends the lifecycle event (events.go).
//
// Timers (reconnect grace, GC deadlines) are runtime timers, so a deadline
// fires when it is due, not at the next poll. Files hold one concern each:
// register.go, presence.go, gc.go, delete.go (deletion and logout),
// mapstream.go, api_node.go, api_admin.go, and so on.
package coordinator
