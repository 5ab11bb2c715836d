// Package node is the in-memory mesh node inside meshinit. It ties the
// pieces together: a fresh WireGuard key (memory only), registration and
// the map stream (controlclient), the WireGuard device (dataplane), the
// name table that lets apps use mesh names (nametable), and the local
// proxy apps reach the mesh through (proxy).
//
// Lifecycle: New checks the configuration; Start registers, waits for the
// first map, brings the device up with every peer, reports the UDP
// endpoints and starts the proxy, all bounded by its context (meshinit's
// MESH_WAIT_TIMEOUT); from then on map deltas are applied one peer at a
// time (never a full reload). Logout leaves the mesh (an ephemeral node is
// deleted at once) and takes the tunnel down while the proxy keeps serving
// non-mesh destinations; Close releases everything. Nothing is written to
// disk.
package node
