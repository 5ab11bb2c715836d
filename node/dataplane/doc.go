// Package dataplane is the mesh node's packet path: a wireguard-go device
// whose inside is either a gVisor netstack living in this process (Userspace
// mode: no privileges, apps reach the mesh through DialContext and the local
// proxy, inbound connections are forwarded to 127.0.0.1) or a kernel TUN
// interface with the mesh addresses and routes (TUN mode: unmodified apps
// just connect).
//
// The device is configured only through deltas: UpsertPeer and RemovePeer
// each issue one small UAPI transaction, so a change costs the same with ten
// peers as with ten thousand. Nothing is written to disk; the private key
// lives only in memory.
//
// Constructing nothing costs nothing: the package has no init work of its
// own, so a binary that links it but never calls New (meshinit without a
// key) pays only the package initialisers of its dependencies; see
// docs/dataplane.md for the measured figures.
package dataplane
