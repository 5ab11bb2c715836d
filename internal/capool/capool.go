// Package capool reads the PEM file of certificate authorities a client is
// told to trust for one server (a coordinator with a private CA or a
// self-signed certificate), in place of the system's roots.
package capool

import (
	"crypto/x509"
	"fmt"
	"os"
)

// maxSize bounds the file: a bundle of CA certificates is kilobytes.
const maxSize = 1 << 20

// Load reads the PEM certificates in path. A file that holds none is an
// error, so that a wrong path (a key, an empty file) fails at start rather
// than at the first TLS handshake with "unknown authority".
func Load(path string) (*x509.CertPool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxSize {
		return nil, fmt.Errorf("%s: want a PEM file of CA certificates (at most %d bytes)", path, maxSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s: no PEM certificate in it (want one or more \"-----BEGIN CERTIFICATE-----\" blocks)", path)
	}
	return pool, nil
}
