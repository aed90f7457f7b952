// Package connectgo runs spark-connect-go, Spark's Go client, unchanged
// against a real bin/srdd's Spark Connect port (issue 27): a SQL query
// on a shared RDD written over REST, with srdd's token, and the errors a
// client gets for a bad token, an unknown session and none. It is a
// module of its own, so the client's dependencies (Arrow among them)
// stay out of srdd's go.mod; `make test-connect` runs it.
package connectgo

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/spark-connect-go/spark/sparkerrors"
	"github.com/apache/spark-connect-go/spark/sql"
	"google.golang.org/grpc/codes"
)

// node is one bin/srdd with TLS, a users file and a Spark Connect port.
type node struct {
	base    string // https://127.0.0.1:PORT
	connect string // 127.0.0.1:PORT
	token   string // ana's: roles code, create:*, read:*, write:*
	client  *http.Client
}

func TestSparkConnectGoReadsASharedRDD(t *testing.T) {
	n := startNode(t)
	var sess struct {
		ID int `json:"id"`
	}
	n.rest(t, "POST", "/sessions", `{"kind":"pyspark","name":"go-client"}`, 201, &sess)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var st struct{ State string }
		n.rest(t, "GET", fmt.Sprintf("/sessions/%d/state", sess.ID), "", 200, &st)
		if st.State == "idle" {
			break
		}
		if st.State != "starting" || time.Now().After(deadline) {
			t.Fatalf("session %d is %q, not idle", sess.ID, st.State)
		}
		time.Sleep(500 * time.Millisecond)
	}
	n.rest(t, "POST", "/v1/rdds", fmt.Sprintf(`{"name":"states","session":%d,"mode":"memory"}`, sess.ID), 201, nil)
	n.rest(t, "POST", "/v1/rdds/states/set",
		`{"items":{"ak":"Alaska","hi":{"name":"Hawaii","pop":1455271},"tx":"Texas"}}`, 200, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	url := func(params ...string) string {
		return "sc://" + n.connect + "/;" + strings.Join(params, ";")
	}
	spark, err := sql.NewSessionBuilder().
		Remote(url("token="+n.token, fmt.Sprintf("x-srdd-session=%d", sess.ID))).Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer spark.Stop()

	df, err := spark.Sql(ctx, "SELECT key, value FROM global_temp.states ORDER BY key")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := df.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	for _, r := range rows {
		var v any
		if err := json.Unmarshal([]byte(r.Value("value").(string)), &v); err != nil {
			t.Fatalf("row %v: value is not JSON: %v", r.Values(), err)
		}
		got[r.Value("key").(string)] = v
	}
	want := map[string]any{"ak": "Alaska", "hi": map[string]any{"name": "Hawaii", "pop": 1455271.0}, "tx": "Texas"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("global_temp.states through spark-connect-go: %v, want %v", got, want)
	}

	// A later REST write shows in the next query (the view is as of the
	// query's start), and the query runs in the session's SparkContext:
	// an aggregate over it.
	n.rest(t, "PUT", "/v1/rdds/states/keys/ca", `"California"`, 204, nil)
	df, err = spark.Sql(ctx, "SELECT count(*) AS n, max(key) AS last FROM global_temp.states")
	if err != nil {
		t.Fatal(err)
	}
	rows, err = df.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || fmt.Sprint(rows[0].Value("n")) != "4" || rows[0].Value("last") != "tx" {
		t.Fatalf("count after a REST write: %v", rows)
	}

	// The errors a client gets: srdd's gRPC status, with its message.
	for _, c := range []struct {
		name   string
		url    string
		code   codes.Code
		saying string
	}{
		{"bad token", url("token=not-a-token", fmt.Sprintf("x-srdd-session=%d", sess.ID)), codes.Unauthenticated, "token"},
		{"unknown session", url("token="+n.token, "x-srdd-session=no-such-session"), codes.NotFound, "no-such-session"},
		{"no session", url("token=" + n.token), codes.InvalidArgument, "x-srdd-session"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := sql.NewSessionBuilder().Remote(c.url).Build(ctx)
			if err == nil {
				defer s.Stop()
				_, err = s.Sql(ctx, "SELECT 1")
			}
			code, msg, ok := sparkStatus(err)
			if !ok || code != c.code || !strings.Contains(msg, c.saying) {
				t.Fatalf("got %v, want %v saying %q", err, c.code, c.saying)
			}
		})
	}
}

// sparkStatus is the gRPC status code and message the client's error
// carries (spark-connect-go wraps it in a sparkerrors.SparkError).
func sparkStatus(err error) (codes.Code, string, bool) {
	var p *sparkerrors.SparkError
	if errors.As(err, &p) {
		return p.Code, p.Message, true
	}
	var v sparkerrors.SparkError
	if errors.As(err, &v) {
		return v.Code, v.Message, true
	}
	return codes.Unknown, "", false
}

// startNode starts bin/srdd (SRDD_BIN) with PySpark (SRDD_NODE_PYTHON),
// TLS from a certificate made here, and a users file, and stops it at
// the test's end.
func startNode(t *testing.T) *node {
	t.Helper()
	bin := os.Getenv("SRDD_BIN")
	if bin == "" {
		bin = "../../bin/srdd"
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no srdd binary at %s (SRDD_BIN); run this with `make test-connect`", bin)
	}
	python := os.Getenv("SRDD_NODE_PYTHON")
	if python == "" {
		t.Fatal("SRDD_NODE_PYTHON names no Python with pyspark; run this with `make test-connect`")
	}
	dir := t.TempDir()
	cert, key, pool := selfSigned(t, dir)
	// spark-connect-go verifies a token's TLS connection with the system
	// roots, which SSL_CERT_FILE names on Linux: this certificate alone.
	t.Setenv("SSL_CERT_FILE", cert)

	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		t.Fatal(err)
	}
	n := &node{token: hex.EncodeToString(tok),
		client: &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	users := filepath.Join(dir, "users.json")
	run(t, bin, "auth", "add", "--file", users, "--name", "ana", "--token", n.token,
		"--role", "code", "--role", "create:*", "--role", "read:*", "--role", "write:*")

	cmd := exec.Command(bin, "server", "--node-id", "n1", "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
		"--data-dir", filepath.Join(dir, "data"), "--python", python, "--spark-master", "local[2]",
		"--auth-file", users, "--tls-cert", cert, "--tls-key", key, "--connect-addr", "127.0.0.1:0")
	cmd.Env = os.Environ()
	cmd.Dir = dir // Spark writes its spark-warehouse into the working dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	log := &lockedLog{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("srdd's log:\n%s", log)
		}
	})
	// The node says where it serves: its API, then its Spark Connect port.
	type addrs struct{ base, connect string }
	serving := make(chan addrs, 1)
	go func() {
		api := regexp.MustCompile(`serving on (https://\S+)`)
		sc := regexp.MustCompile(`Spark Connect on sc://([^/\s]+)/`)
		var a addrs
		rd := bufio.NewReader(stderr)
		for {
			line, err := rd.ReadString('\n') // any length: the node never blocks on a full pipe
			log.add(line)
			if m := api.FindStringSubmatch(line); m != nil {
				a.base = strings.TrimSuffix(m[1], "/")
			}
			if m := sc.FindStringSubmatch(line); m != nil && a.base != "" {
				a.connect = m[1]
				serving <- a
			}
			if err != nil {
				close(serving)
				return
			}
		}
	}()
	select {
	case a, ok := <-serving:
		if !ok {
			t.Fatalf("srdd ended before serving:\n%s", log)
		}
		n.base, n.connect = a.base, a.connect
	case <-time.After(2 * time.Minute):
		t.Fatalf("srdd did not start in 2 min:\n%s", log)
	}
	return n
}

// rest calls the node as ana and checks the status; with out, it decodes
// the answer.
func (n *node) rest(t *testing.T, method, path, body string, want int, out any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, n.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+n.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// lockedLog is the node's stderr, kept for a failure's report.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() < 4<<20 {
		l.b.WriteString(line)
	}
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// selfSigned writes a 1-day P-256 certificate for 127.0.0.1 and its key
// into dir. -> their paths and a pool that trusts it.
func selfSigned(t *testing.T, dir string) (string, string, *x509.CertPool) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(parsed)
	return cert, key, pool
}
