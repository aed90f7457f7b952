// Package peerid reads the node identity a peer certificate proves
// (docs/ARCHITECTURE.md, "Peer trust"): a URI SAN srdd://node/<id>, in a
// certificate valid for both TLS server and TLS client use. Nothing else
// names a node: not the Subject CommonName (a user's client certificate
// from the same CA has one), not a certificate with one usage only.
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
// URI SAN (several that disagree are refused). A certificate without one
// names no node, whatever its CommonName; so does one that is not valid
// for both TLS server and client use (NodeUsages), which is what sets a
// node certificate apart from a user's (`srdd cert client` makes client
// usage only). The ID must be a valid node ID (Valid).
func NodeID(c *x509.Certificate) (string, error) {
	if c == nil {
		return "", errors.New("no certificate")
	}
	if err := NodeUsages(c); err != nil {
		return "", err
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
		return "", fmt.Errorf("certificate %q names no node: it has no %s://%s/<id> URI SAN (a user's certificate is never a peer)", c.Subject.CommonName, Scheme, Host)
	}
	if err := Valid(id); err != nil {
		return "", fmt.Errorf("certificate names no valid node id: %w", err)
	}
	return id, nil
}

// NodeUsages checks that c may serve and dial the peer port: its extended
// key usages include both TLS server and TLS client authentication.
func NodeUsages(c *x509.Certificate) error {
	var server, client bool
	for _, u := range c.ExtKeyUsage {
		server = server || u == x509.ExtKeyUsageServerAuth
		client = client || u == x509.ExtKeyUsageClientAuth
	}
	if !server || !client {
		return fmt.Errorf("certificate %q is not a node certificate: a node's is valid for both TLS server and TLS client use (extended key usages serverAuth and clientAuth)", c.Subject.CommonName)
	}
	return nil
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
