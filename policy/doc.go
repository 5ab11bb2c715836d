// Package policy is the mesh's access policy: a strict subset of
// Tailscale's grants, written as JSON with comments and trailing commas.
//
//	{
//	  "grants": [
//	    {"src": ["tag:ci"], "dst": ["tag:db"], "ip": ["tcp:5432"]},
//	    {"src": ["tag:ci"], "dst": ["tag:web"], "ip": ["tcp:80,443", "icmp"]},
//	  ],
//	  "tests": [
//	    {"src": "tag:ci", "accept": ["tag:db:5432"], "deny": ["tag:db:22"]},
//	  ],
//	}
//
// Parse checks a document (errors name the line), RunTests runs its tests,
// and the compiled Policy answers the three questions the mesh asks:
//
//   - Allows: may a node with these tags open this flow to a node with
//     those tags? (the tests' oracle, and the packet filter's rule);
//   - Visible: should the two nodes see each other in their maps (the
//     coordinator's trimming: either direction allowed);
//   - InboundRules: which sources, by tag, may open which ports on a node
//     with these tags (what the coordinator sends each node).
//
// No policy (a nil *Policy) allows everything; any policy denies what no
// grant allows. Grants are directional: a grant from A to B lets A open
// flows to B, and replies flow back, but B cannot open flows to A.
package policy
