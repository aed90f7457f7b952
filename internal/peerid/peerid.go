// Package peerid reads the node identity a peer certificate proves
// (docs/ARCHITECTURE.md, "Peer trust"): a URI SAN srdd://node/<id>, or,
// failing that, the Subject CommonName.
package peerid

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Scheme and Host of the URI SAN that names a node: srdd://node/<id>.
const (
	Scheme = "srdd"
	Host   = "node"
)

// MaxIDLen bounds a node ID read from a certificate.
const MaxIDLen = 128

// URI is the URI SAN naming node id.
func URI(id string) *url.URL {
	return &url.URL{Scheme: Scheme, Host: Host, Path: "/" + id}
}

// NodeID returns the node ID the certificate names: its srdd://node/<id>
// URI SAN if it has one (several that disagree are refused), else its
// Subject CommonName. The ID must be a valid node ID (Valid).
func NodeID(c *x509.Certificate) (string, error) {
	if c == nil {
		return "", errors.New("no certificate")
	}
	id := ""
	for _, u := range c.URIs {
		if u == nil || u.Scheme != Scheme || u.Host != Host {
			continue
		}
		got := strings.TrimPrefix(u.Path, "/")
		if id != "" && got != id {
			return "", fmt.Errorf("certificate names two nodes: %q and %q", id, got)
		}
		id = got
	}
	if id == "" {
		id = c.Subject.CommonName
	}
	if err := Valid(id); err != nil {
		return "", fmt.Errorf("certificate names no valid node id: %w", err)
	}
	return id, nil
}

// Valid checks a node ID: 1 to MaxIDLen characters of letters, digits,
// '.', '_' and '-', not starting with '.' or '-'.
func Valid(id string) error {
	if id == "" {
		return errors.New("empty node id")
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("node id longer than %d bytes", MaxIDLen)
	}
	for i, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || (i > 0 && (r == '.' || r == '-'))
		if !ok {
			return fmt.Errorf("node id %q has a character other than letters, digits, '.', '_', '-' (or starts with '.' or '-')", id)
		}
	}
	return nil
}
