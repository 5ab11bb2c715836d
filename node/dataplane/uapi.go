package dataplane

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

// parsePeerStatus reads the peer sections of wireguard-go's UAPI "get"
// output (https://www.wireguard.com/xplatform/). Device-level lines before
// the first public_key, including the private key, are skipped without
// being kept. A peer whose endpoint is still a candidate list reports a
// zero Endpoint.
func parsePeerStatus(text string) ([]PeerStatus, error) {
	var (
		out        []PeerStatus
		cur        *PeerStatus
		sec, nsec  int64
		firstError error
	)
	flush := func() {
		if cur != nil {
			if sec != 0 || nsec != 0 {
				cur.LastHandshake = time.Unix(sec, nsec)
			}
			out = append(out, *cur)
		}
		cur, sec, nsec = nil, 0, 0
	}
	fail := func(line int, format string, args ...any) {
		if firstError == nil {
			firstError = fmt.Errorf("wireguard status line %d: %s", line, fmt.Sprintf(format, args...))
		}
	}
	for n, line := range strings.Split(text, "\n") {
		if line == "" {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			fail(n+1, "no '=' in %q", line)
			continue
		}
		if key == "public_key" {
			flush()
			var k meshapi.Key
			if len(value) != hex.EncodedLen(len(k)) {
				fail(n+1, "public key: want %d hex digits", hex.EncodedLen(len(k)))
				continue
			}
			if _, err := hex.Decode(k[:], []byte(value)); err != nil {
				fail(n+1, "public key: %v", err)
				continue
			}
			cur = &PeerStatus{PublicKey: k}
			continue
		}
		if cur == nil {
			continue // device section (private_key, listen_port, fwmark)
		}
		var err error
		switch key {
		case "endpoint":
			if ap, perr := netip.ParseAddrPort(value); perr == nil {
				cur.Endpoint = ap
			}
		case "last_handshake_time_sec":
			sec, err = strconv.ParseInt(value, 10, 64)
		case "last_handshake_time_nsec":
			nsec, err = strconv.ParseInt(value, 10, 64)
		case "rx_bytes":
			cur.RxBytes, err = strconv.ParseUint(value, 10, 64)
		case "tx_bytes":
			cur.TxBytes, err = strconv.ParseUint(value, 10, 64)
		}
		if err != nil {
			fail(n+1, "%s: %v", key, err)
		}
	}
	flush()
	return out, firstError
}
