// Package peeridtest makes a CA and node certificates for tests, with
// crypto/x509, in a test's temp dir.
package peeridtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/srdd/srdd/internal/peerid"
)

// CA is a test certificate authority.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
	File    string // CertPEM written to the temp dir
	dir     string
}

// Files are the PEM files of one node certificate.
type Files struct{ Cert, Key string }

var serial int64 = time.Now().UnixNano()

func next() *big.Int { serial++; return big.NewInt(serial) }

// newKey makes a P-256 key and the template of a certificate for it
// with CommonName cn, valid from an hour ago for a day.
func newKey(t testing.TB, cn string) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key, &x509.Certificate{
		SerialNumber: next(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
}

// NewCA makes a CA named name and writes its certificate to a temp dir.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key, tmpl := newKey(t, name)
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &CA{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), dir: t.TempDir()}
	ca.File = filepath.Join(ca.dir, "ca.pem")
	write(t, ca.File, ca.CertPEM)
	return ca
}

// Node makes a certificate for node id (CN and URI SAN srdd://node/id,
// valid for 127.0.0.1 and localhost, for server and client use) and
// writes it and its key to new files.
func (ca *CA) Node(t testing.TB, id string) Files {
	t.Helper()
	return ca.NodeNamed(t, id, id)
}

// NodeNamed is Node with a CommonName that may differ from the URI SAN's
// id ("" leaves out the URI SAN).
func (ca *CA) NodeNamed(t testing.TB, cn, uriID string) Files {
	t.Helper()
	return ca.Issue(t, cn, uriID, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
}

// Client makes a user's certificate as `srdd cert client` does: CN name,
// TLS client use only, no node URI SAN.
func (ca *CA) Client(t testing.TB, name string) Files {
	t.Helper()
	return ca.Issue(t, name, "", x509.ExtKeyUsageClientAuth)
}

// Issue makes a certificate with CommonName cn, the node URI SAN of uriID
// ("" for none) and the extended key usages given.
func (ca *CA) Issue(t testing.TB, cn, uriID string, usages ...x509.ExtKeyUsage) Files {
	t.Helper()
	key, tmpl := newKey(t, cn)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = usages
	tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback}
	tmpl.DNSNames = []string{"localhost"}
	if uriID != "" {
		tmpl.URIs = append(tmpl.URIs, peerid.URI(uriID))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(ca.dir, "node-")
	if err != nil {
		t.Fatal(err)
	}
	f := Files{Cert: filepath.Join(dir, "node.pem"), Key: filepath.Join(dir, "node-key.pem")}
	write(t, f.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	write(t, f.Key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}))
	return f
}

// Bundle writes the certificates of several CAs to one PEM file.
func Bundle(t testing.TB, cas ...*CA) string {
	t.Helper()
	var b []byte
	for _, ca := range cas {
		b = append(b, ca.CertPEM...)
	}
	f := filepath.Join(t.TempDir(), "bundle.pem")
	write(t, f, b)
	return f
}

func write(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Pool is a pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}
