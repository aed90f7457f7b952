package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/srdd/srdd/auth"
	"github.com/srdd/srdd/internal/pki"
	"github.com/srdd/srdd/internal/testutil"
)

func runCert(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	c := certCmd()
	var out, errb bytes.Buffer
	c.SetOut(&out)
	c.SetErr(&errb)
	c.SetArgs(args)
	err := c.Execute()
	return strings.TrimSpace(out.String()), errb.String(), err
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pki.ParseCert(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCertCLI(t *testing.T) {
	dir := t.TempDir()
	caDir, n1Dir := filepath.Join(dir, "ca"), filepath.Join(dir, "n1")
	out, _, err := runCert(t, "ca", "--out", caDir)
	if err != nil || out != filepath.Join(caDir, "ca.pem")+"\n"+filepath.Join(caDir, "ca-key.pem") {
		t.Fatalf("cert ca printed %q, %v", out, err)
	}
	caKey := filepath.Join(caDir, "ca-key.pem")
	before, _ := os.ReadFile(caKey)
	if _, _, err := runCert(t, "ca", "--out", caDir); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("a second cert ca = %v, want a refusal that names --force", err)
	}
	if after, _ := os.ReadFile(caKey); !bytes.Equal(before, after) {
		t.Fatal("a refused cert ca changed ca-key.pem")
	}

	_, hint, err := runCert(t, "node", "--ca", caDir, "--name", "n1", "--host", "h1", "--host", "10.0.0.5", "--out", n1Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--node-id n1", "--peer-cert " + filepath.Join(n1Dir, "n1.pem"),
		"--peer-key " + filepath.Join(n1Dir, "n1-key.pem"), "--peer-ca " + filepath.Join(n1Dir, "ca.pem")} {
		if !strings.Contains(hint, want) {
			t.Errorf("cert node's hint %q lacks %q", hint, want)
		}
	}
	c := readCert(t, filepath.Join(n1Dir, "n1.pem"))
	ca := readCert(t, filepath.Join(n1Dir, "ca.pem"))
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: "10.0.0.5", KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			t.Errorf("usage %v: %v", u, err)
		}
	}
	if c.Subject.CommonName != "n1" || len(c.URIs) != 1 || c.URIs[0].String() != "srdd://node/n1" || c.DNSNames[0] != "h1" {
		t.Errorf("CN %q URIs %v DNS %v", c.Subject.CommonName, c.URIs, c.DNSNames)
	}
	if st, _ := os.Stat(filepath.Join(n1Dir, "n1-key.pem")); st == nil || st.Mode().Perm() != 0o600 {
		t.Errorf("n1-key.pem: %v", st)
	}
	if _, err := os.Stat(filepath.Join(n1Dir, "ca-key.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the CA key is in the node's dir: %v", err)
	}
	if _, _, err := runCert(t, "node", "--ca", caDir, "--name", "n1", "--host", "h1", "--out", n1Dir); err == nil {
		t.Error("cert node overwrote n1.pem without --force")
	}
	if _, _, err := runCert(t, "node", "--ca", caDir, "--name", "n1", "--host", "h9", "--out", n1Dir, "--force"); err != nil {
		t.Errorf("--force: %v", err)
	} else if c := readCert(t, filepath.Join(n1Dir, "n1.pem")); c.DNSNames[0] != "h9" {
		t.Errorf("--force did not replace n1.pem: %v", c.DNSNames)
	}

	// Bad input: a clear error, no files.
	for _, args := range [][]string{
		{"node", "--ca", caDir, "--name", "n2", "--out", filepath.Join(dir, "n2")},                               // no --host
		{"node", "--ca", caDir, "--name", "../n2", "--host", "h", "--out", filepath.Join(dir, "n2")},             // a path
		{"node", "--ca", caDir, "--name", "n2", "--host", "h h", "--out", filepath.Join(dir, "n2")},              // a bad host
		{"node", "--ca", n1Dir, "--name", "n2", "--host", "h", "--out", filepath.Join(dir, "n2")},                // no CA key there
		{"node", "--ca", caDir, "--name", "n2", "--host", "h", "--out", filepath.Join(dir, "n2"), "--days", "0"}, // validity
		{"client", "--ca", caDir, "--name", "ana", "--host", "h", "--out", filepath.Join(dir, "n2")},             // client has no hosts
		{"ca", "--out", filepath.Join(dir, "n2"), "--days", "-1"},
	} {
		if _, _, err := runCert(t, args...); err == nil {
			t.Errorf("srdd cert %s: no error", strings.Join(args, " "))
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "n2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused commands wrote %s: %v", filepath.Join(dir, "n2"), err)
	}
}

// TestCertsServeTheAPI runs the real binary with what `srdd cert` made:
// the node certificate serves the API over https (it is a server
// certificate for 127.0.0.1), and a `srdd cert client` certificate
// authenticates its user through --tls-client-ca.
func TestCertsServeTheAPI(t *testing.T) {
	spark(t)
	bin := buildSrdd(t)
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(bin, append([]string{"cert"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("srdd cert %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ca, n1, users := filepath.Join(dir, "ca"), filepath.Join(dir, "n1"), filepath.Join(dir, "users")
	run("ca", "--out", ca)
	run("node", "--ca", ca, "--name", "n1", "--host", "127.0.0.1", "--host", "localhost", "--out", n1)
	run("client", "--ca", ca, "--name", "ana", "--out", users)
	run("client", "--ca", ca, "--name", "bob", "--out", users)
	usersFile := filepath.Join(dir, "users.json")
	var f auth.File
	if err := f.AddUser("ana", []string{"read:*"}, "", "pw"); err != nil {
		t.Fatal(err)
	}
	if err := auth.WriteFile(usersFile, &f); err != nil {
		t.Fatal(err)
	}
	_, addr := startSrdd(t, bin, "--node-id", "n1", "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
		"--data-dir", filepath.Join(dir, "data"), "--auth-file", usersFile,
		"--tls-cert", filepath.Join(n1, "n1.pem"), "--tls-key", filepath.Join(n1, "n1-key.pem"),
		"--tls-ca", filepath.Join(n1, "ca.pem"), "--tls-client-ca", filepath.Join(n1, "ca.pem"))
	roots := x509.NewCertPool()
	pemCA, _ := os.ReadFile(filepath.Join(ca, "ca.pem"))
	roots.AppendCertsFromPEM(pemCA)
	get := func(user string) int {
		t.Helper()
		cfg := &tls.Config{RootCAs: roots}
		if user != "" {
			pair, err := tls.LoadX509KeyPair(filepath.Join(users, user+".pem"), filepath.Join(users, user+"-key.pem"))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: cfg}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get("https://" + addr + "/v1/rdds")
		if err != nil {
			t.Fatalf("GET as %q: %v", user, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	// ana is a user: 200. bob has a valid certificate but no user: 401.
	// Nobody: 401. Every request verified the server against the CA.
	for user, want := range map[string]int{"ana": 200, "bob": 401, "": 401} {
		if got := get(user); got != want {
			t.Errorf("GET /v1/rdds with the certificate of %q: %d, want %d", user, got, want)
		}
	}
}

// TestCertsFormACluster runs the README's recipe: `srdd cert` makes a CA
// and three node certificates, three real srdd processes form a cluster
// with --peer-cert/--peer-key/--peer-ca (Raft and joins over mutual TLS).
// A node whose certificate is of another CA cannot join (the handshake
// fails), and a member's certificate does not start a node under another
// node ID; the cluster stays n1-n3. Needs srdd server's --peer-* flags
// (issue 14, brief 14a).
func TestCertsFormACluster(t *testing.T) {
	bin := buildSrdd(t)
	if help, _ := exec.Command(bin, "server", "--help").CombinedOutput(); !strings.Contains(string(help), "--peer-cert") {
		t.Fatal("srdd server has no --peer-cert/--peer-key/--peer-ca flags (peer mTLS, issue 14)")
	}
	dir := t.TempDir()
	cert := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(bin, append([]string{"cert"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("srdd cert %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ca, other := filepath.Join(dir, "ca"), filepath.Join(dir, "other-ca")
	cert("ca", "--out", ca)
	cert("ca", "--out", other)
	for _, n := range []string{"n1", "n2", "n3"} {
		cert("node", "--ca", ca, "--name", n, "--host", "127.0.0.1", "--host", "localhost", "--out", filepath.Join(dir, n))
	}
	cert("node", "--ca", other, "--name", "n4", "--host", "127.0.0.1", "--out", filepath.Join(dir, "n4"))
	args := func(id, certDir string) []string {
		return []string{"--node-id", id, "--http-addr", "127.0.0.1:0", "--raft-addr", testutil.FreeAddr(t),
			"--data-dir", filepath.Join(dir, "data-"+id),
			"--peer-cert", filepath.Join(dir, certDir, certDir+".pem"), "--peer-key", filepath.Join(dir, certDir, certDir+"-key.pem"),
			"--peer-ca", filepath.Join(dir, certDir, "ca.pem")}
	}
	_, first := startSrdd(t, bin, append(args("n1", "n1"), "--bootstrap", "--admit", "n2,n3")...)
	var last string
	for _, n := range []string{"n2", "n3"} {
		_, last = startSrdd(t, bin, append(args(n, n), "--join", first)...)
	}
	var v clusterView
	var err error
	formed := func() bool {
		return testutil.Poll(2*time.Minute, 100*time.Millisecond, func() (bool, error) {
			v, err = viewOf(last)
			return err == nil && v.Leader != "" && len(v.Members) == 3, nil
		}) == nil
	}
	if !formed() {
		t.Fatalf("the cluster did not form over peer TLS: %+v %v", v, err)
	}

	// Strangers: their start fails (the join is refused), the cluster
	// stays n1-n3.
	for name, a := range map[string][]string{
		"another CA's certificate": args("n4", "n4"),
		"n2's certificate as n4":   args("n4", "n2"),
	} {
		cmd := exec.Command(bin, append(append([]string{"server", "--log-level", "warn"}, a...), "--join", first)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var runErr error
		select {
		case runErr = <-exited:
		case <-time.After(3 * time.Minute):
			_ = cmd.Process.Kill()
			<-exited
			t.Fatalf("%s: still running after 3 minutes", name)
		}
		if runErr == nil || strings.Contains(out.String(), "serving on") {
			t.Errorf("%s: the node started (%v)\n%s", name, runErr, out.String())
		}
		t.Logf("%s: refused: %s", name, strings.TrimSpace(out.String()))
		_ = os.RemoveAll(filepath.Join(dir, "data-n4"))
	}
	if !formed() {
		t.Fatalf("after the strangers: %+v %v", v, err)
	}
	for _, m := range v.Members {
		if m.ID == "n4" {
			t.Fatalf("a stranger became a member: %+v", v)
		}
	}
}
