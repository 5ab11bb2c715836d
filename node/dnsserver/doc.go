// Package dnsserver is the mesh's DNS resolver for apps in TUN mode: a
// small server on a loopback address (UDP and TCP) that answers mesh names
// from the node's name table and passes every other query, byte for byte,
// to the nameservers the container had before (its original resolv.conf).
//
// What it answers itself, all with a TTL of 5 s (TTL), and with the
// authoritative bit set:
//
//   - A and AAAA (and ANY) for a node's name, short ("web") or fully
//     qualified ("web.mesh.internal", any letter case): the node's mesh
//     addresses. A node without an address of the asked family, or a
//     question of another type, gets NODATA (no error, no answer, the
//     zone's SOA) rather than NXDOMAIN: musl asks A and AAAA at once and
//     takes an NXDOMAIN for the whole name.
//   - NXDOMAIN (with the SOA, whose minimum is also 5 s) for a name under
//     the mesh domain that no node holds; the mesh domain itself exists
//     (SOA answered, NODATA for the rest).
//   - PTR for a mesh address (in-addr.arpa / ip6.arpa), NXDOMAIN for one
//     no node holds.
//
// Everything else, single-label names that are no node's included (a
// Docker service name, say), is forwarded to the upstream nameservers in
// order until one answers; SERVFAIL, REFUSED and NOTIMP move on to the next
// one, as glibc does. A query that came over UDP is forwarded over UDP and
// a truncated answer is returned as it is, so the client asks again over
// TCP, which is forwarded over TCP. Forwarded answers are checked against
// the query (ID, question) and come from a connected socket of a fresh
// random port per query.
//
// Parsing and building messages uses golang.org/x/net/dns/dnsmessage, the
// parser Go's own resolver uses; the fuzz targets feed it arbitrary bytes
// through this package's code.
package dnsserver
