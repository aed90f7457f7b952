package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newCA(t *testing.T) *CA {
	t.Helper()
	ca, err := NewCA("srdd test CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t *testing.T, ca *CA, req Request) (*x509.Certificate, tls.Certificate) {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(req)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("the key does not match the certificate: %v", err)
	}
	c, err := ParseCert(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c, pair
}

func pool(ca *CA) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

func TestCA(t *testing.T) {
	ca := newCA(t)
	c := ca.Cert
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatalf("not a CA limited to end certificates: IsCA %v maxPathLen %d zero %v usage %b", c.IsCA, c.MaxPathLen, c.MaxPathLenZero, c.KeyUsage)
	}
	if c.PublicKeyAlgorithm != x509.ECDSA || c.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Fatalf("key %v signature %v, want ECDSA P-256 with SHA-256", c.PublicKeyAlgorithm, c.SignatureAlgorithm)
	}
	if got := c.NotAfter.Sub(c.NotBefore); got < DefaultCAValidity || got > DefaultCAValidity+time.Hour {
		t.Fatalf("validity %v, want about %v", got, DefaultCAValidity)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Fatalf("not self-signed: %v", err)
	}
}

func TestNodeCertificate(t *testing.T) {
	ca := newCA(t)
	c, _ := issue(t, ca, Request{Kind: Node, Name: "n1", Hosts: []string{"h1", "10.0.0.5", "N1.Example.Internal", "::1"}})
	if c.Subject.CommonName != "n1" {
		t.Errorf("CN %q, want the node ID", c.Subject.CommonName)
	}
	if len(c.URIs) != 1 || c.URIs[0].String() != "srdd://node/n1" {
		t.Errorf("URI SANs %v, want [srdd://node/n1]", c.URIs)
	}
	if strings.Join(c.DNSNames, ",") != "h1,n1.example.internal" {
		t.Errorf("DNS SANs %v", c.DNSNames)
	}
	if len(c.IPAddresses) != 2 || !c.IPAddresses[0].Equal(net.ParseIP("10.0.0.5")) || !c.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("IP SANs %v", c.IPAddresses)
	}
	if c.IsCA || c.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("IsCA %v, key usage %b", c.IsCA, c.KeyUsage)
	}
	if len(c.ExtKeyUsage) != 2 || c.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || c.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
		t.Errorf("ExtKeyUsage %v, want server and client", c.ExtKeyUsage)
	}
	// It verifies against the CA as a server (for each host) and as a client.
	for _, host := range []string{"h1", "10.0.0.5", "n1.example.internal", "::1"} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool(ca), DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("as a server for %s: %v", host, err)
		}
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool(ca), DNSName: "other", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("verifies for a host it does not name")
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool(ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("as a client: %v", err)
	}
	// Not against another CA.
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool(newCA(t)), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
		t.Error("verifies against another CA")
	}
	if got := c.NotAfter.Sub(c.NotBefore); got < DefaultCertValidity || got > DefaultCertValidity+time.Hour {
		t.Errorf("validity %v, want about %v", got, DefaultCertValidity)
	}
}

func TestClientCertificate(t *testing.T) {
	ca := newCA(t)
	c, _ := issue(t, ca, Request{Kind: Client, Name: "ana"})
	if c.Subject.CommonName != "ana" || len(c.URIs) != 0 || len(c.DNSNames) != 0 || len(c.IPAddresses) != 0 {
		t.Errorf("CN %q URIs %v DNS %v IP %v: want the user's CN and no SANs", c.Subject.CommonName, c.URIs, c.DNSNames, c.IPAddresses)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool(ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("as a client: %v", err)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool(ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("a client certificate verifies as a server")
	}
}

func TestValidityIsCutToTheCA(t *testing.T) {
	ca, err := NewCA("short CA", 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := issue(t, ca, Request{Kind: Node, Name: "n1", Hosts: []string{"h1"}, Validity: 365 * 24 * time.Hour})
	if !c.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Fatalf("the node certificate ends %v, after its CA (%v)", c.NotAfter, ca.Cert.NotAfter)
	}
	c, _ = issue(t, ca, Request{Kind: Node, Name: "n1", Hosts: []string{"h1"}, Validity: time.Hour})
	if d := c.NotAfter.Sub(c.NotBefore); d != time.Hour+backdate {
		t.Fatalf("validity %v, want 1h (plus %v backdated)", d, backdate)
	}
}

func TestBadRequests(t *testing.T) {
	ca := newCA(t)
	f := func(req Request, want string) {
		t.Helper()
		_, _, err := ca.Issue(req)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Issue(%+v) = %v, want an error with %q", req, err, want)
		}
	}
	f(Request{Kind: Node, Name: "", Hosts: []string{"h"}}, "name")
	f(Request{Kind: Node, Name: "..", Hosts: []string{"h"}}, "name")
	f(Request{Kind: Node, Name: "a/b", Hosts: []string{"h"}}, "name")
	f(Request{Kind: Node, Name: "-n", Hosts: []string{"h"}}, "name")
	f(Request{Kind: Node, Name: "n 1", Hosts: []string{"h"}}, "name")
	f(Request{Kind: Node, Name: strings.Repeat("n", 129), Hosts: []string{"h"}}, "name")
	f(Request{Kind: Node, Name: ".n", Hosts: []string{"h"}}, "name")
	f(Request{Kind: Node, Name: "n1"}, "at least one host")
	f(Request{Kind: Node, Name: "n1", Hosts: []string{"bad host"}}, "neither an IP")
	f(Request{Kind: Node, Name: "n1", Hosts: []string{"a..b"}}, "neither an IP")
	f(Request{Kind: Node, Name: "n1", Hosts: []string{""}}, "neither an IP")
	f(Request{Kind: Node, Name: "n1", Hosts: []string{"h:8999"}}, "neither an IP")
	f(Request{Kind: Node, Name: "n1", Hosts: []string{"h"}, Validity: -time.Hour}, "positive")
	f(Request{Kind: Client, Name: "ana", Hosts: []string{"h"}}, "no hosts")
	f(Request{Kind: Kind(7), Name: "x"}, "unknown")
	if _, err := NewCA("", 0); err == nil {
		t.Error("a CA without a name")
	}
	// A wildcard DNS name is fine; so is every node ID srdd server takes.
	if _, _, err := ca.Issue(Request{Kind: Node, Name: "n1", Hosts: []string{"*.srdd.default.svc"}}); err != nil {
		t.Error(err)
	}
	for _, id := range []string{"_n", "srdd-0", "Node.1", strings.Repeat("n", 128)} {
		if _, _, err := ca.Issue(Request{Kind: Node, Name: id, Hosts: []string{"h"}}); err != nil {
			t.Errorf("node ID %q: %v", id, err)
		}
	}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestWriteAndLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca := newCA(t)
	if err := WriteCA(dir, ca, false); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("CA dir mode %o, want 700", m)
	}
	if m := mode(t, filepath.Join(dir, CAKeyFile)); m != 0o600 {
		t.Errorf("ca-key.pem mode %o, want 600", m)
	}
	if m := mode(t, filepath.Join(dir, CACertFile)); m != 0o644 {
		t.Errorf("ca.pem mode %o, want 644", m)
	}
	loaded, err := LoadCA(dir)
	if err != nil || !loaded.Cert.Equal(ca.Cert) {
		t.Fatalf("LoadCA: %v", err)
	}

	// No overwrite without force; nothing changes.
	before, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err := WriteCA(dir, newCA(t), false); !errors.Is(err, ErrExists) {
		t.Fatalf("second WriteCA = %v, want ErrExists", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, CAKeyFile)); string(after) != string(before) {
		t.Fatal("a refused WriteCA changed the key")
	}
	// Even when only one of the two files exists.
	other := filepath.Join(t.TempDir(), "half")
	if err := os.MkdirAll(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, CAKeyFile), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteCA(other, ca, false); !errors.Is(err, ErrExists) {
		t.Fatalf("WriteCA over a lone key = %v, want ErrExists", err)
	}
	if _, err := os.Stat(filepath.Join(other, CACertFile)); err == nil {
		t.Fatal("a refused WriteCA wrote ca.pem")
	}
	// With force it is replaced, and the modes stay.
	ca2 := newCA(t)
	if err := WriteCA(dir, ca2, true); err != nil {
		t.Fatal(err)
	}
	if loaded, err := LoadCA(dir); err != nil || !loaded.Cert.Equal(ca2.Cert) {
		t.Fatalf("after --force: %v", err)
	}
	if m := mode(t, filepath.Join(dir, CAKeyFile)); m != 0o600 {
		t.Errorf("ca-key.pem mode after force %o", m)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// A key that is not the certificate's is refused.
	k2, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err := os.WriteFile(filepath.Join(dir, CAKeyFile), before, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(dir); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("LoadCA with another CA's key = %v", err)
	}
	_ = os.WriteFile(filepath.Join(dir, CAKeyFile), k2, 0o600)
	// A node certificate is not a CA.
	certPEM, keyPEM, _ := ca2.Issue(Request{Kind: Node, Name: "n1", Hosts: []string{"h"}})
	if _, err := ParseCA(certPEM, keyPEM); err == nil {
		t.Fatal("a node certificate loads as a CA")
	}
	if _, err := LoadCA(t.TempDir()); err == nil {
		t.Fatal("an empty dir loads as a CA")
	}
}

func TestWritePair(t *testing.T) {
	ca := newCA(t)
	dir := filepath.Join(t.TempDir(), "n")
	for _, name := range []string{"n1", "n2"} {
		certPEM, keyPEM, err := ca.Issue(Request{Kind: Node, Name: name, Hosts: []string{name}})
		if err != nil {
			t.Fatal(err)
		}
		// n2 goes into the same dir: its ca.pem is this CA's, so no refusal.
		if err := WritePair(dir, name, ca, certPEM, keyPEM, false); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m := mode(t, filepath.Join(dir, name+"-key.pem")); m != 0o600 {
			t.Errorf("%s-key.pem mode %o", name, m)
		}
		if _, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")); err != nil {
			t.Error(err)
		}
		if err := WritePair(dir, name, ca, certPEM, keyPEM, false); !errors.Is(err, ErrExists) {
			t.Errorf("writing %s twice = %v, want ErrExists", name, err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	if c, err := ParseCert(b); err != nil || !c.Equal(ca.Cert) {
		t.Fatalf("the node dir's ca.pem is not the CA certificate: %v", err)
	}
	if strings.Contains(string(b), "PRIVATE") {
		t.Fatal("the node dir's ca.pem holds a key")
	}
	if _, err := os.Stat(filepath.Join(dir, CAKeyFile)); err == nil {
		t.Fatal("the CA key was copied next to a node's files")
	}
	// Another CA's ca.pem in the dir is not replaced silently.
	other := newCA(t)
	certPEM, keyPEM, _ := other.Issue(Request{Kind: Node, Name: "n3", Hosts: []string{"n3"}})
	if err := WritePair(dir, "n3", other, certPEM, keyPEM, false); !errors.Is(err, ErrExists) {
		t.Fatalf("a node of another CA into the dir = %v, want ErrExists", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "n3.pem")); err == nil {
		t.Fatal("a refused WritePair wrote n3.pem")
	}
	if err := WritePair(dir, "../x", ca, certPEM, keyPEM, true); err == nil {
		t.Fatal("a name with a path was accepted")
	}
}

// TestMutualTLSHandshake runs a real TLS 1.3 connection over 127.0.0.1
// between two node certificates of one CA, each side requiring and
// verifying the other's; a certificate of another CA fails the handshake.
func TestMutualTLSHandshake(t *testing.T) {
	ca := newCA(t)
	_, n1 := issue(t, ca, Request{Kind: Node, Name: "n1", Hosts: []string{"127.0.0.1"}})
	_, n2 := issue(t, ca, Request{Kind: Node, Name: "n2", Hosts: []string{"127.0.0.1"}})
	stranger := newCA(t)
	_, evil := issue(t, stranger, Request{Kind: Node, Name: "n2", Hosts: []string{"127.0.0.1"}})

	srvCfg := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{n1},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool(ca)}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type seen struct {
		peer *x509.Certificate
		err  error
	}
	got := make(chan seen, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c *tls.Conn) {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				if err := c.Handshake(); err != nil {
					got <- seen{err: err}
					return
				}
				b := make([]byte, 4)
				if _, err := io.ReadFull(c, b); err != nil {
					got <- seen{err: err}
					return
				}
				_, err := c.Write([]byte("pong"))
				got <- seen{peer: c.ConnectionState().PeerCertificates[0], err: err}
			}(c.(*tls.Conn))
		}
	}()

	dial := func(cert tls.Certificate, roots *x509.CertPool) (*x509.Certificate, error) {
		d := &net.Dialer{Timeout: 30 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), &tls.Config{MinVersion: tls.VersionTLS13,
			Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "127.0.0.1"})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return nil, err
		}
		b := make([]byte, 4)
		if _, err := io.ReadFull(c, b); err != nil {
			return nil, err
		}
		if string(b) != "pong" {
			return nil, errors.New("bad reply " + string(b))
		}
		return c.ConnectionState().PeerCertificates[0], nil
	}

	// n2 dials n1: each proves its node ID to the other.
	srv, err := dial(n2, pool(ca))
	if err != nil {
		t.Fatalf("n2 → n1: %v", err)
	}
	if srv.Subject.CommonName != "n1" || srv.URIs[0].String() != "srdd://node/n1" {
		t.Errorf("n2 sees %q %v, want n1", srv.Subject.CommonName, srv.URIs)
	}
	s := <-got
	if s.err != nil {
		t.Fatalf("n1 side: %v", s.err)
	}
	if s.peer.Subject.CommonName != "n2" || s.peer.URIs[0].String() != "srdd://node/n2" {
		t.Errorf("n1 sees %q %v, want n2", s.peer.Subject.CommonName, s.peer.URIs)
	}

	// A client certificate from another CA (claiming n2) is refused by n1.
	if _, err := dial(evil, pool(ca)); err == nil {
		t.Error("a certificate of another CA got through")
	}
	if s := <-got; s.err == nil {
		t.Error("n1 accepted a certificate of another CA")
	}
	// A client that trusts only another CA refuses n1.
	if _, err := dial(evil, pool(stranger)); err == nil {
		t.Error("a client trusting another CA accepted n1")
	}
	<-got
}
