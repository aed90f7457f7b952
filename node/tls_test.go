package node

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	srddclient "github.com/srdd/srdd/client/go"
	"github.com/srdd/srdd/internal/testutil"
)

// testCA issues certificates for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "srdd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns PEM certificate and key for cn; server certificates name
// 127.0.0.1.
func (ca *testCA) issue(t *testing.T, cn string, serial int64, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTLS serves the API over https: tokens and client certificates
// authenticate, the Go SDK verifies with --ca-cert, session code's durable
// writes call back over https, and Reload swaps the certificate.
func TestTLS(t *testing.T) {
	spark(t)
	dir := t.TempDir()
	ca := newTestCA(t)
	caFile := writeFile(t, filepath.Join(dir, "ca.pem"), ca.pem)
	c1, k1 := ca.issue(t, "127.0.0.1", 10, true)
	certFile, keyFile := writeFile(t, filepath.Join(dir, "cert.pem"), c1), writeFile(t, filepath.Join(dir, "key.pem"), k1)
	users := filepath.Join(dir, "users.json")
	tok := testutil.WriteUsers(t, users, map[string][]string{"ana": {"code", "create:*", "read:*", "write:*"}}, nil)["ana"]
	cfg := testConfig(t, filepath.Join(dir, "data"))
	cfg.AuthFile, cfg.TLSCert, cfg.TLSKey, cfg.TLSClientCA, cfg.TLSCA = users, certFile, keyFile, caFile, caFile
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	base := "https://" + n.HTTPAddr()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}}}
	}
	get := func(hc *http.Client, path, token string) (int, *tls.ConnectionState) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.TLS
	}
	if st, _ := get(client(), "/v1/rdds", tok); st != 200 {
		t.Fatalf("token over https: %d", st)
	}
	if st, _ := get(client(), "/v1/rdds", ""); st != 401 {
		t.Fatalf("no credentials over https: %d", st)
	}
	for cn, want := range map[string]int{"ana": 200, "stranger": 401} {
		cp, kp := ca.issue(t, cn, 20, false)
		pair, err := tls.X509KeyPair(cp, kp)
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := get(client(pair), "/v1/rdds", ""); st != want {
			t.Fatalf("client certificate of %s: %d, want %d", cn, st, want)
		}
	}
	if _, err := http.Get("http://" + n.HTTPAddr() + "/version"); err == nil {
		// The TLS listener must not answer plain HTTP with a 200.
		resp, _ := http.Get("http://" + n.HTTPAddr() + "/version")
		if resp != nil && resp.StatusCode == 200 {
			t.Fatal("plain http answered 200")
		}
	}

	// The SDK and the CLI's client: --token and --ca-cert.
	sdk, err := srddclient.NewWithOptions(n.HTTPAddr(), srddclient.Options{Token: tok, CACert: caFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sdk.ListRDDs(t.Context()); err != nil {
		t.Fatalf("SDK over https: %v", err)
	}

	// Session code's durable writes reach the node over https.
	st, _, b := authDo2(client(), "POST", base+"/sessions", `{"kind":"pyspark"}`, tok)
	if st != 201 {
		t.Fatalf("create session: %d %s", st, b)
	}
	err = testutil.WaitFor(4*time.Minute, func() (bool, error) {
		_, _, b := authDo2(client(), "GET", base+"/sessions/0/state", "", tok)
		if strings.Contains(string(b), `"dead"`) || strings.Contains(string(b), `"error"`) {
			return false, fmt.Errorf("session failed: %s", b)
		}
		return strings.Contains(string(b), `"idle"`), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st, _, b := authDo2(client(), "POST", base+"/v1/rdds", `{"name":"tls_dur","session":0,"mode":"durable"}`, tok); st != 201 {
		t.Fatalf("create rdd: %d %s", st, b)
	}
	if st, _, b := authDo2(client(), "POST", base+"/sessions/0/statements", `{"code":"tls_dur.set('k', 'v')"}`, tok); st != 201 {
		t.Fatalf("statement: %d %s", st, b)
	}
	err = testutil.WaitFor(2*time.Minute, func() (bool, error) {
		_, _, b := authDo2(client(), "GET", base+"/sessions/0/statements/0", "", tok)
		if strings.Contains(string(b), `"error"`) {
			return false, fmt.Errorf("statement failed: %s", b)
		}
		return strings.Contains(string(b), `"available"`), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st, _, b := authDo2(client(), "GET", base+"/v1/rdds/tls_dur/keys/k", "", tok); st != 200 || !strings.Contains(string(b), `"v"`) {
		t.Fatalf("write from session code over https: %d %s", st, b)
	}

	// SIGHUP's Reload swaps the certificate for new handshakes.
	c2, k2 := ca.issue(t, "127.0.0.1", 11, true)
	writeFile(t, certFile, c2)
	writeFile(t, keyFile, k2)
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, cs := get(client(), "/healthz", ""); cs == nil || cs.PeerCertificates[0].SerialNumber.Int64() != 11 {
		t.Fatalf("after reload the node presents %v, want serial 11", cs.PeerCertificates[0].SerialNumber)
	}
	writeFile(t, certFile, []byte("not a certificate"))
	if err := n.Reload(); err == nil {
		t.Fatal("a bad certificate reloads")
	}
	if st, _ := get(client(), "/healthz", ""); st != 200 {
		t.Fatalf("after a bad reload: %d", st)
	}
}

func authDo2(hc *http.Client, method, url, body, token string) (int, http.Header, []byte) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}
