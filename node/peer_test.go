package node

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/peerid/peeridtest"
	"github.com/srdd/srdd/internal/testutil"
)

// peerHTTP sends one HTTP request over the peer channel of the node at
// raftAddr, presenting the certificate f, and returns the status (0 when
// the connection is refused before an answer).
func peerHTTP(t *testing.T, raftAddr string, f *peeridtest.Files, method, path, body string) int {
	t.Helper()
	cfg := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // a test client
	if f != nil {
		kp, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", raftAddr, cfg)
	if err != nil {
		return 0
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	req, _ := http.NewRequest(method, "http://"+raftAddr+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if _, err := c.Write([]byte{'H'}); err != nil {
		return 0
	}
	if err := req.Write(c); err != nil {
		return 0
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestPeerTLSClusterRefusesIntruders: with peer TLS, the client port
// serves no node-to-node route; on the peer channel, a certificate from
// another CA, no certificate, or a plaintext peer gets nothing, and a
// valid certificate of a non-member can neither feed the registry nor
// join under another node's ID.
func TestPeerTLSClusterRefusesIntruders(t *testing.T) {
	ms := startCluster(t)
	entry, err := cluster.Encode(cluster.Command{Type: cluster.CmdCreateSession, Body: &cluster.CreateSession{Name: "evil", Kind: "pyspark", Node: "n1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		do(t, "POST", m.base()+cluster.ApplyPath, string(entry), 403)
		do(t, "GET", m.base()+cluster.IndexPath, "", 403)
		do(t, "GET", m.base()+cluster.SilentPath, "", 403)
		do(t, "POST", m.base()+"/v1/cluster/join", `{"id":"evil","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`, 403)
	}
	other := peeridtest.NewCA(t, "other-ca")
	otherN2 := other.Node(t, "n2")
	n9 := peerCA(t).Node(t, "n9") // valid CA, not a member
	leader := leaderOf(ms)
	for _, m := range ms {
		if st := peerHTTP(t, m.raft, nil, "POST", cluster.ApplyPath, string(entry)); st != 0 {
			t.Errorf("%s: apply with no certificate: status %d", m.id, st)
		}
		if st := peerHTTP(t, m.raft, &otherN2, "POST", cluster.ApplyPath, string(entry)); st != 0 {
			t.Errorf("%s: apply with another CA's certificate: status %d", m.id, st)
		}
		if st := peerHTTP(t, m.raft, &n9, "POST", cluster.ApplyPath, string(entry)); st != 403 {
			t.Errorf("%s: apply with a non-member's certificate: status %d, want 403", m.id, st)
		}
		if st := peerHTTP(t, m.raft, &n9, "POST", "/v1/cluster/join", `{"id":"n3","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`); st != 403 {
			t.Errorf("%s: n9's certificate joining as n3: status %d, want 403", m.id, st)
		}
		// Plaintext: an HTTP request straight to the Raft port.
		c, err := net.DialTimeout("tcp", m.raft, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		fmt.Fprintf(c, "HGET %s HTTP/1.1\r\nHost: x\r\n\r\n", cluster.IndexPath)
		b, _ := io.ReadAll(c)
		c.Close()
		if strings.Contains(string(b), "HTTP/1.1 200") {
			t.Errorf("%s: plaintext peer got an answer: %q", m.id, b)
		}
	}
	// A certificate of the CA may join as itself, but never push out a
	// member by claiming its Raft address (the review's exploit: n9 at
	// n2's address took n2 out of the configuration).
	victim := ms[1]
	if victim == leader {
		victim = ms[2]
	}
	join := fmt.Sprintf(`{"id":"n9","raft_addr":%q,"http_addr":"127.0.0.1:2","has_state":false}`, victim.raft)
	if st := peerHTTP(t, leader.raft, &n9, "POST", "/v1/cluster/join", join); st != 403 {
		t.Errorf("n9, not admitted, joining at %s's Raft address: status %d, want 403", victim.id, st)
	}
	// Even admitted, it may not take a member's address.
	if err := leader.n.Registry.Admit("n9", true, "test"); err != nil {
		t.Fatal(err)
	}
	if st := peerHTTP(t, leader.raft, &n9, "POST", "/v1/cluster/join", join); st != 409 {
		t.Errorf("n9 joining at %s's Raft address: status %d, want 409", victim.id, st)
	}
	if err := leader.n.Registry.AdmitPeer(victim.id); err != nil {
		t.Errorf("after n9's join at its address, %s is no longer a member: %v", victim.id, err)
	}
	if err := leader.n.Registry.AdmitPeer("n9"); err == nil {
		t.Error("n9 became a member at another member's address")
	}
	// Control: a member's own certificate is served.
	n1 := peeridtest.Files{Cert: ms[0].peerCert, Key: ms[0].peerKey}
	if st := peerHTTP(t, leader.raft, &n1, "GET", cluster.IndexPath, ""); st != 200 {
		t.Fatalf("n1's certificate asking the leader's index: %d, want 200", st)
	}
	for _, m := range ms {
		if _, ok := m.n.Registry.SessionByName("evil"); ok {
			t.Fatalf("%s recorded the forged session", m.id)
		}
		if rec, ok := m.n.Registry.Member("n3"); ok && rec.RaftAddr == "127.0.0.1:1" {
			t.Fatalf("%s recorded the forged join", m.id)
		}
	}
}

// serialAt returns the serial of the peer certificate the node at
// raftAddr presents now.
func serialAt(t *testing.T, raftAddr string, f peeridtest.Files) string {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", raftAddr,
		&tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{kp}}) //nolint:gosec // only reads the certificate
	if err != nil {
		t.Fatalf("dial %s: %v", raftAddr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// replace writes b to path as an operator would: a new file renamed over.
func replace(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	replace(t, to, b)
}

// TestPeerCertRotationUnderLoad rotates every node's peer certificate
// (new ones from the same CA), then swaps the CA (a bundle of both, new
// certificates from the new CA, the new CA alone), reloading as SIGHUP
// does, while writes go through followers (forwarded over the peer
// channel) and strong reads through followers go to the leader: not one
// request fails, and at the end the old CA is no longer trusted.
func TestPeerCertRotationUnderLoad(t *testing.T) {
	// Slower Raft timing than other cluster tests: a 2-core machine under
	// -race and other load must not lose a leader on its own while this
	// counts failed requests (a lost leader fails a write whatever the
	// certificates do).
	ms := startClusterWith(t, func(c *Config) {
		c.Raft.HeartbeatTimeout, c.Raft.ElectionTimeout = 2*time.Second, 2*time.Second
		c.Raft.DownAfter = 4 * time.Second
	})
	var failed, done atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := m.n.Registry.Apply(cluster.Command{Type: cluster.CmdCreateSession,
					Body: &cluster.CreateSession{Name: fmt.Sprintf("w%d-%d", w, i), Kind: "pyspark", Node: "offline"}})
				if err == nil {
					var st int
					st, _ = rawDo("GET", m.base()+"/v1/cluster?consistency=strong", "")
					if st != 200 {
						err = fmt.Errorf("strong read through %s: %d", m.id, st)
					}
				}
				done.Add(1)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	// Let the load run, then rotate while it runs.
	waitOps := func(n int64) {
		t.Helper()
		target := done.Load() + n
		if err := testutil.WaitFor(2*time.Minute, func() (bool, error) { return done.Load() >= target, nil }); err != nil {
			t.Fatalf("load stalled at %d operations", done.Load())
		}
	}
	reloadAll := func(what string) {
		t.Helper()
		for _, m := range ms {
			if err := m.n.Reload(); err != nil {
				t.Fatalf("%s: reload %s: %v", what, m.id, err)
			}
		}
		waitOps(30)
	}
	waitOps(30)
	oldCA := peerCA(t)

	// 1. New certificates from the same CA.
	for _, m := range ms {
		before := serialAt(t, m.raft, peeridtest.Files{Cert: m.peerCert, Key: m.peerKey})
		f := oldCA.Node(t, m.id)
		copyFile(t, f.Cert, m.peerCert)
		copyFile(t, f.Key, m.peerKey)
		if err := m.n.Reload(); err != nil {
			t.Fatal(err)
		}
		if after := serialAt(t, m.raft, f); after == before {
			t.Fatalf("%s still presents certificate %s after the reload", m.id, before)
		}
	}
	waitOps(30)

	// 2. CA swap: trust both, move every node to the new CA, drop the old.
	newCA := peeridtest.NewCA(t, "srdd-test-ca-2")
	both := append(append([]byte{}, oldCA.CertPEM...), newCA.CertPEM...)
	for _, m := range ms {
		replace(t, m.peerCA, both)
	}
	reloadAll("bundle")
	for _, m := range ms {
		f := newCA.Node(t, m.id)
		copyFile(t, f.Cert, m.peerCert)
		copyFile(t, f.Key, m.peerKey)
	}
	reloadAll("new CA certificates")
	for _, m := range ms {
		replace(t, m.peerCA, newCA.CertPEM)
	}
	reloadAll("new CA alone")
	// New connections between every pair work under the new CA.
	for _, a := range ms {
		for _, b := range ms {
			if a == b {
				continue
			}
			c, err := a.n.Registry.DialPeer(b.id, 10*time.Second)
			if err != nil {
				t.Fatalf("%s -> %s after the CA swap: %v", a.id, b.id, err)
			}
			c.Close()
		}
	}
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed during rotation; first: %v", n, done.Load(), firstErr.Load())
	}
	// The old CA is no longer trusted: a certificate from it gets nothing.
	stale := oldCA.Node(t, "n1")
	if st := peerHTTP(t, ms[0].raft, &stale, "GET", cluster.IndexPath, ""); st != 0 {
		t.Fatalf("a certificate from the dropped CA was served: %d", st)
	}
	// And a node presents the new CA's certificate.
	kp, err := tls.LoadX509KeyPair(ms[1].peerCert, ms[1].peerKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(kp.Certificate[0])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: newCA.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("n2's certificate is not from the new CA: %v", err)
	}
	t.Logf("%d requests during rotation, 0 failed", done.Load())
}
