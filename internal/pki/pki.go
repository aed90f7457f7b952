// Package pki makes the certificates of a small srdd cluster with
// crypto/x509: a CA, node certificates that serve and dial the peer port
// (mutual TLS between nodes), and client certificates for the API's
// --tls-client-ca. It is for development and small clusters that have no
// PKI of their own (`srdd cert`); a real PKI must put the same identity
// into its node certificates (docs/ARCHITECTURE.md, "Certificates for
// people without a PKI").
//
// A node certificate names its node twice: Subject CommonName = node ID
// and a URI SAN srdd://node/<node-id>. Client certificates carry neither
// the URI SAN nor the server usage, so a user's certificate signed by the
// same CA never passes as a node.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// NodeURIPrefix starts the URI SAN that names a node: srdd://node/<id>.
const NodeURIPrefix = "srdd://node/"

// Default validities. The CA outlives many node certificates; node and
// client certificates are rotated (srdd reloads them on SIGHUP).
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultCertValidity = 2 * 365 * 24 * time.Hour
	// backdate covers clocks a little behind the one that signed.
	backdate = 5 * time.Minute
)

// nameRe is the node ID rule of srdd server (internal/peerid.Valid):
// letters, digits, '.', '_', '-', not starting with '.' or '-'; at most
// 128 bytes.
var nameRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// ValidName checks a node ID or user name for a certificate. What it
// accepts is a URI path segment and a file name as it stands (no '/', not
// "." or "..").
func ValidName(name string) error {
	if !nameRe.MatchString(name) {
		return fmt.Errorf("name %q: want 1-128 letters, digits, '.', '_' or '-', not starting with '.' or '-'", name)
	}
	return nil
}

// NodeURI is the URI SAN that names node id.
func NodeURI(id string) *url.URL {
	return &url.URL{Scheme: "srdd", Host: "node", Path: "/" + id}
}

// CA is a certificate authority: its certificate and signing key.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA makes a self-signed ECDSA P-256 CA named name. It may sign end
// certificates only (path length 0). validity 0 means DefaultCAValidity.
func NewCA(name string, validity time.Duration) (*CA, error) {
	if validity == 0 {
		validity = DefaultCAValidity
	}
	if validity < 0 {
		return nil, errors.New("validity must be positive")
	}
	if strings.TrimSpace(name) == "" {
		return nil, errors.New("the CA needs a name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("cannot generate the CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"srdd"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("cannot sign the CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// ParseCA reads a CA from PEM: a certificate that is a CA allowed to sign
// certificates, and the private key that matches it.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCert(certPEM)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("the certificate is not a CA that may sign certificates")
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if !samePublicKey(cert.PublicKey, key.Public()) {
		return nil, errors.New("the CA key does not match the CA certificate")
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Kind is what a certificate is for.
type Kind int

const (
	// Node certificates serve and dial the peer port: ExtKeyUsage server
	// and client, CN = node ID, URI SAN srdd://node/<id>, DNS/IP SANs.
	Node Kind = iota
	// Client certificates authenticate a user to the API
	// (--tls-client-ca): ExtKeyUsage client only, CN = user name.
	Client
)

// Request says what to issue.
type Request struct {
	Kind Kind
	// Name is the node ID (Node) or the user name (Client); see ValidName.
	Name string
	// Hosts are the DNS names and IP addresses the node is dialled at
	// (Node only; at least one).
	Hosts []string
	// Validity 0 means DefaultCertValidity; it is cut to the CA's expiry.
	Validity time.Duration
}

// Issue makes a new ECDSA P-256 key and a certificate for it signed by
// ca, and returns both as PEM (the key as PKCS #8).
func (ca *CA) Issue(req Request) (certPEM, keyPEM []byte, err error) {
	tmpl, err := template(req)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	if !now.Before(ca.Cert.NotAfter) {
		return nil, nil, fmt.Errorf("the CA expired on %s", ca.Cert.NotAfter.UTC().Format(time.DateOnly))
	}
	validity := req.Validity
	if validity == 0 {
		validity = DefaultCertValidity
	}
	if validity < 0 {
		return nil, nil, errors.New("validity must be positive")
	}
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-backdate), now.Add(validity)
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	if tmpl.SerialNumber, err = newSerial(); err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot generate a key: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot sign the certificate: %w", err)
	}
	keyPEM, err = KeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return CertPEM(der), keyPEM, nil
}

func template(req Request) (*x509.Certificate, error) {
	if err := ValidName(req.Name); err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:  pkix.Name{CommonName: req.Name, Organization: []string{"srdd"}},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	switch req.Kind {
	case Node:
		if len(req.Hosts) == 0 {
			return nil, errors.New("a node certificate needs at least one host (the name or address peers dial)")
		}
		tmpl.Subject.OrganizationalUnit = []string{"node"}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		tmpl.URIs = []*url.URL{NodeURI(req.Name)}
		for _, h := range req.Hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
				continue
			}
			if err := validHost(h); err != nil {
				return nil, err
			}
			tmpl.DNSNames = append(tmpl.DNSNames, strings.ToLower(h))
		}
	case Client:
		if len(req.Hosts) != 0 {
			return nil, errors.New("a client certificate names no hosts")
		}
		tmpl.Subject.OrganizationalUnit = []string{"client"}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	default:
		return nil, fmt.Errorf("unknown certificate kind %d", req.Kind)
	}
	return tmpl, nil
}

var labelRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// validHost accepts a DNS name, with an optional leading "*." wildcard.
func validHost(h string) error {
	name := strings.TrimSuffix(strings.TrimPrefix(h, "*."), ".")
	if name == "" || len(h) > 253 {
		return fmt.Errorf("host %q is neither an IP address nor a DNS name", h)
	}
	for _, l := range strings.Split(name, ".") {
		if !labelRe.MatchString(l) {
			return fmt.Errorf("host %q is neither an IP address nor a DNS name", h)
		}
	}
	return nil
}

// newSerial is a random 128-bit positive serial number (RFC 5280 allows
// up to 20 octets).
func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("cannot draw a serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

// CertPEM encodes a DER certificate.
func CertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// KeyPEM encodes a private key as PKCS #8.
func KeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("cannot encode the key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseCert reads the first certificate of a PEM file.
func ParseCert(b []byte) (*x509.Certificate, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no PEM certificate found")
		}
		if blk.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("cannot parse the certificate: %w", err)
			}
			return c, nil
		}
	}
}

// ParseKey reads a PEM private key: PKCS #8, SEC 1 (EC) or PKCS #1 (RSA).
func ParseKey(b []byte) (crypto.Signer, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no PEM private key found")
		}
		var k any
		var err error
		switch blk.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(blk.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cannot parse the private key: %w", err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", k)
		}
		return s, nil
	}
}

func samePublicKey(a, b crypto.PublicKey) bool {
	ab, err1 := x509.MarshalPKIXPublicKey(a)
	bb, err2 := x509.MarshalPKIXPublicKey(b)
	return err1 == nil && err2 == nil && bytes.Equal(ab, bb)
}
