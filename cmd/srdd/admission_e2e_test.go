package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/testutil"
)

// Peer admission (issue 21; docs/ARCHITECTURE.md invariant 9, "Peer
// trust"), on real bin/srdd processes whose certificates come from the
// README's recipe (srdd cert ca / node / client, one CA).

// certSet is a CA and certificates made by `srdd cert`, as the README does.
type certSet struct {
	t        *testing.T
	bin, dir string
}

func (p certSet) run(args ...string) {
	p.t.Helper()
	if out, err := exec.Command(p.bin, append([]string{"cert"}, args...)...).CombinedOutput(); err != nil {
		p.t.Fatalf("srdd cert %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newPKI(t *testing.T, bin string) certSet {
	p := certSet{t: t, bin: bin, dir: t.TempDir()}
	p.run("ca", "--out", filepath.Join(p.dir, "ca"))
	return p
}

// node makes n's node certificate (srdd cert node) and returns its files.
func (p certSet) node(n string) (cert, key, ca string) {
	out := filepath.Join(p.dir, n)
	if _, err := os.Stat(out); err != nil {
		p.run("node", "--ca", filepath.Join(p.dir, "ca"), "--name", n, "--host", "127.0.0.1", "--host", "localhost", "--out", out)
	}
	return filepath.Join(out, n+".pem"), filepath.Join(out, n+"-key.pem"), filepath.Join(out, "ca.pem")
}

// client makes a user's certificate (srdd cert client) for name.
func (p certSet) client(name string) tls.Certificate {
	out := filepath.Join(p.dir, "users")
	p.run("client", "--ca", filepath.Join(p.dir, "ca"), "--name", name, "--out", out, "--force")
	kp, err := tls.LoadX509KeyPair(filepath.Join(out, name+".pem"), filepath.Join(out, name+"-key.pem"))
	if err != nil {
		p.t.Fatal(err)
	}
	return kp
}

func (p certSet) peerArgs(n string) []string {
	c, k, ca := p.node(n)
	return []string{"--node-id", n, "--peer-cert", c, "--peer-key", k, "--peer-ca", ca}
}

func (p certSet) creds(n string) *cluster.PeerCreds {
	c, k, ca := p.node(n)
	pc, err := cluster.LoadPeerCreds(c, k, ca)
	if err != nil {
		p.t.Fatal(err)
	}
	return pc
}

// proc is one srdd server process started without waiting for it.
type proc struct {
	id, http, raft, dir string
	args                []string
	cmd                 *exec.Cmd
	exited              chan error
	log                 string
}

// launch starts `bin server` for p with its args; output goes to a new
// log file per launch.
func (p *proc) launch(t *testing.T, bin string, run int) {
	t.Helper()
	p.log = filepath.Join(p.dir+"-logs", fmt.Sprintf("%s-%d.log", p.id, run))
	if err := os.MkdirAll(filepath.Dir(p.log), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"server", "--log-level", "info", "--http-addr", p.http, "--raft-addr", p.raft,
		"--data-dir", p.dir, "--python", testutil.Python(t), "--spark-master", "local[1]"}, p.args...)
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p.exited = make(chan error, 1)
	cmd, exited := p.cmd, p.exited
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(p.stop)
}

func (p *proc) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.exited <- errors.New("killed") // later stops find it closed
	p.cmd = nil
}

func (p *proc) alive() bool {
	select {
	case err := <-p.exited:
		p.exited <- err
		return false
	default:
		return p.cmd != nil
	}
}

func (p *proc) logText(t *testing.T) string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// threeNodes starts n1 (--bootstrap --admit n2,n3), n2 and n3 with the
// README's peer TLS flags plus extra, and waits until all are ready.
func threeNodes(t *testing.T, bin string, certs certSet, extra ...string) []*proc {
	t.Helper()
	base := t.TempDir()
	var ps []*proc
	for i := 1; i <= 3; i++ {
		p := &proc{id: fmt.Sprintf("n%d", i), http: testutil.FreeAddr(t), raft: testutil.FreeAddr(t), dir: filepath.Join(base, fmt.Sprintf("n%d", i))}
		p.args = append(certs.peerArgs(p.id), extra...)
		if i == 1 {
			p.args = append(p.args, "--bootstrap", "--admit", "n2,n3")
		} else {
			p.args = append(p.args, "--join", ps[0].http)
		}
		ps = append(ps, p)
	}
	for _, p := range ps {
		p.launch(t, bin, 0)
	}
	for _, p := range ps {
		awaitStatus(t, p, "/readyz", 200, "")
	}
	return ps
}

// awaitStatus polls path on p until it answers status with a body that
// contains want, and fails the test if p exits or a minute passes.
func awaitStatus(t *testing.T, p *proc, path string, status int, want string) []byte {
	t.Helper()
	var last string
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if !p.alive() {
			t.Fatalf("%s exited while waiting for %s %d:\n%s", p.id, path, status, p.logText(t))
		}
		st, b, err := call("GET", "http://"+p.http+path, "", "")
		if err == nil && st == status && strings.Contains(string(b), want) {
			return b
		}
		last = fmt.Sprintf("%d %s %v", st, b, err)
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %s never answered %d with %q; last %s\n%s", p.id, path, status, want, last, p.logText(t))
	return nil
}

type statusView struct {
	Term     string `json:"term"`
	Leader   string `json:"leader"`
	Admitted []struct {
		ID    string `json:"id"`
		Voter bool   `json:"voter"`
	} `json:"admitted"`
	Members []struct {
		ID       string `json:"id"`
		RaftAddr string `json:"raft_addr"`
		Status   string `json:"status"`
	} `json:"members"`
}

func statusOf(t *testing.T, p *proc, token string) statusView {
	t.Helper()
	st, b, err := callHeaders("GET", "http://"+p.http+"/v1/cluster", "", map[string]string{"Authorization": bearer(token)})
	if err != nil || st != 200 {
		t.Fatalf("GET /v1/cluster on %s: %d %s %v", p.id, st, b, err)
	}
	var v statusView
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func memberIDs(v statusView) string {
	var ids []string
	for _, m := range v.Members {
		if m.Status != "removed" {
			ids = append(ids, m.ID)
		}
	}
	return strings.Join(ids, ",")
}

// peerHTTP sends an HTTP request to the member at raftAddr over the peer
// channel, proving the node creds names.
func peerHTTP(t *testing.T, creds *cluster.PeerCreds, raftAddr, method, path, body string, hdr map[string]string) (int, []byte) {
	t.Helper()
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			return cluster.DialPeerAddr(creds, raftAddr, 10*time.Second)
		}}}
	req, _ := http.NewRequest(method, "http://"+raftAddr+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s over the peer channel: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// userDial opens the peer port of raftAddr with a user's certificate and
// sends the channel byte ('R' Raft, 'H' HTTP); the server must refuse it
// in the handshake, which a TLS 1.3 client sees on its first read.
func userDial(cert tls.Certificate, caPool *x509.CertPool, kind byte) func(string, time.Duration) (net.Conn, error) {
	return func(addr string, timeout time.Duration) (net.Conn, error) {
		d := &net.Dialer{Timeout: timeout}
		c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: caPool,
			ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
		if err != nil {
			return nil, err
		}
		if _, err := c.Write([]byte{kind}); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
}

// raftClient speaks hashicorp/raft's wire protocol through dial.
type raftClient struct {
	net.Listener
	dial func(string, time.Duration) (net.Conn, error)
}

func (r raftClient) Dial(a raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return r.dial(string(a), timeout)
}

func newRaftClient(t *testing.T, dial func(string, time.Duration) (net.Conn, error)) *raft.NetworkTransport {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // raft's transport wants one; no one dials it
	if err != nil {
		t.Fatal(err)
	}
	tr := raft.NewNetworkTransport(raftClient{Listener: ln, dial: dial}, 1, 5*time.Second, io.Discard)
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func caPool(t *testing.T, certs certSet) *x509.CertPool {
	b, err := os.ReadFile(filepath.Join(certs.dir, "ca", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b)
	return pool
}

// The findings of issue 21 about who is a peer, on one cluster with
// auth on: a user's certificate never gets past the peer port's
// handshake; a node certificate joins only once admitted, once; the
// forwarding headers count only from members.
func TestPeerAdmission(t *testing.T) {
	bin := buildSrdd(t)
	certs := newPKI(t, bin)
	users := filepath.Join(t.TempDir(), "users.json")
	tok := func(name, role string) string {
		out, err := exec.Command(bin, "auth", "add", "--file", users, "--name", name, "--role", role).Output()
		if err != nil {
			t.Fatalf("srdd auth add %s: %v", name, err)
		}
		return strings.TrimSpace(string(out))
	}
	admin, reader := tok("admin", "admin"), tok("bob", "read:*")
	ps := threeNodes(t, bin, certs, "--auth-file", users)
	n1 := ps[0]
	before := statusOf(t, n1, admin)
	leader := ps[0]
	for _, p := range ps {
		if p.id == before.Leader {
			leader = p
		}
	}
	pool := caPool(t, certs)

	// A user's certificate with a member's CN (srdd cert client --name n2,
	// the README's recipe for users) is refused in the handshake: its
	// AppendEntries, claiming to be n2 with a term 1000 ahead, never
	// reaches Raft, and no term moves.
	rc := newRaftClient(t, userDial(certs.client("n2"), pool, 'R'))
	var n2Addr string
	for _, m := range before.Members {
		if m.ID == "n2" {
			n2Addr = m.RaftAddr
		}
	}
	var term uint64
	fmt.Sscan(before.Term, &term)
	var resp raft.AppendEntriesResponse
	err := rc.AppendEntries("n1", raft.ServerAddress(leader.raft), &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("n2"), Addr: []byte(n2Addr)},
		Term:      term + 1000}, &resp)
	if err == nil {
		t.Fatalf("AppendEntries with a user's certificate got an answer: %+v", resp)
	}
	// A stranger's user certificate cannot join.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(_ context.Context, _, _ string) (net.Conn, error) {
			return userDial(certs.client("ana"), pool, 'H')(leader.raft, 5*time.Second)
		}}}
	if r, err := hc.Post("http://"+leader.raft+"/v1/cluster/join", "application/json",
		strings.NewReader(`{"id":"ana","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2","voter":false}`)); err == nil {
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		t.Fatalf("a join with a user's certificate was answered: %d %s", r.StatusCode, b)
	}
	after := statusOf(t, n1, admin)
	if after.Term != before.Term || memberIDs(after) != "n1,n2,n3" {
		t.Fatalf("after the user certificates: term %s -> %s, members %s", before.Term, after.Term, memberIDs(after))
	}
	if !strings.Contains(leader.logText(t), "peer refused: TLS handshake failed") {
		t.Errorf("the leader did not log the refused handshakes:\n%s", leader.logText(t))
	}

	// A valid node certificate for an ID nobody admitted: 403 not_admitted.
	n4 := certs.creds("n4")
	join4 := func(raftAddr string) (int, []byte) {
		return peerHTTP(t, n4, leader.raft, "POST", "/v1/cluster/join",
			fmt.Sprintf(`{"id":"n4","raft_addr":%q,"http_addr":"127.0.0.1:1"}`, raftAddr), nil)
	}
	if st, b := join4(testutil.FreeAddr(t)); st != 403 || !strings.Contains(string(b), `"not_admitted"`) {
		t.Fatalf("join of n4 before its admission: %d %s, want 403 not_admitted", st, b)
	}
	// The leader decides: a member asking for a stranger's join, and a
	// follower forwarding n4's own, are refused the same way.
	var follower *proc
	for _, p := range ps {
		if p != leader {
			follower = p
		}
	}
	if st, b := peerHTTP(t, certs.creds(follower.id), leader.raft, "POST", "/v1/cluster/join",
		`{"id":"n7","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`, nil); st != 403 || !strings.Contains(string(b), `"not_admitted"`) {
		t.Fatalf("member %s asking for n7's join: %d %s, want 403 not_admitted", follower.id, st, b)
	}
	if st, b := peerHTTP(t, n4, follower.raft, "POST", "/v1/cluster/join",
		fmt.Sprintf(`{"id":"n4","raft_addr":%q,"http_addr":"127.0.0.1:1"}`, testutil.FreeAddr(t)), nil); st != 403 || !strings.Contains(string(b), `"not_admitted"`) {
		t.Fatalf("n4's join through follower %s: %d %s, want 403 not_admitted", follower.id, st, b)
	}
	if m := memberIDs(statusOf(t, n1, admin)); m != "n1,n2,n3" {
		t.Fatalf("members after a refused join: %s", m)
	}

	// Forwarding headers count only from members. A client naming admin
	// in X-Srdd-Principal is not admin: without credentials 401, as bob 403.
	for _, c := range []struct {
		token string
		want  int
	}{{"", 401}, {reader, 403}} {
		st, b, _ := callHeaders("POST", "http://"+n1.http+"/v1/cluster/admit", `{"id":"n6","voter":true}`,
			map[string]string{"Authorization": bearer(c.token), "X-Srdd-Principal": "admin"})
		if st != c.want {
			t.Fatalf("client vouching for admin (with a token: %v): %d %s, want %d", c.token != "", st, b, c.want)
		}
	}
	// Nor from a node that is not a member (n5 was never admitted).
	n5 := certs.creds("n5")
	if st, b := peerHTTP(t, n5, leader.raft, "POST", "/v1/cluster/admit", `{"id":"n6","voter":true}`,
		map[string]string{"X-Srdd-Principal": "admin", "X-Srdd-Hops": "1"}); st != 403 {
		t.Fatalf("a non-member vouching for admin: %d %s, want 403", st, b)
	}
	if st, b := peerHTTP(t, n5, leader.raft, "POST", "/v1/cluster/join", `{"id":"n5","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`,
		map[string]string{"X-Srdd-Principal": "admin"}); st != 403 || !strings.Contains(string(b), "not_admitted") {
		t.Fatalf("a non-member's join vouching for admin: %d %s, want 403 not_admitted", st, b)
	}
	if a := statusOf(t, n1, admin).Admitted; len(a) != 0 {
		t.Fatalf("admitted after refused calls: %+v", a)
	}

	// An admin admits n4 (through a follower: any member proposes it);
	// srdd cluster ls shows it until it joins.
	cli := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"--addr", follower.http, "--token", admin}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("srdd %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := cli("cluster", "admit", "n4", "--voter"); !strings.Contains(out, "admitted n4") {
		t.Fatalf("srdd cluster admit: %s", out)
	}
	if out := cli("cluster", "ls"); !regexpMatch(`(?m)^n4\s+-\s+-\s+voter\s+admitted`, out) {
		t.Fatalf("srdd cluster ls does not show n4 admitted:\n%s", out)
	}
	p4 := &proc{id: "n4", http: testutil.FreeAddr(t), raft: testutil.FreeAddr(t), dir: filepath.Join(t.TempDir(), "n4")}
	p4.args = append(certs.peerArgs("n4"), "--auth-file", users, "--join", n1.http)
	p4.launch(t, bin, 0)
	awaitStatus(t, p4, "/readyz", 200, "")
	v := statusOf(t, n1, admin)
	if memberIDs(v) != "n1,n2,n3,n4" || len(v.Admitted) != 0 {
		t.Fatalf("after n4 joined: members %s, admitted %+v", memberIDs(v), v.Admitted)
	}
	// The admission was used: once n4 is removed, a join as n4 is refused.
	p4.stop()
	cli("cluster", "remove", "n4")
	if st, b := join4(testutil.FreeAddr(t)); st != 403 || !strings.Contains(string(b), `"not_admitted"`) {
		t.Fatalf("a second join on one admission: %d %s, want 403 not_admitted", st, b)
	}
	if m := memberIDs(statusOf(t, n1, admin)); m != "n1,n2,n3" {
		t.Fatalf("members after the second join: %s", m)
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

func bearer(tok string) string {
	if tok == "" {
		return ""
	}
	return "Bearer " + tok
}

// Without peer TLS there is no cluster unless --insecure: Raft off
// loopback exits 2 naming the flags; a join is refused on either side;
// with --insecure on both (and an admission) it works.
func TestPlaintextClusterNeedsInsecure(t *testing.T) {
	bin := buildSrdd(t)
	run := func(args ...string) (int, string) {
		cmd := exec.Command(bin, append([]string{"server", "--data-dir", t.TempDir(), "--python", testutil.Python(t)}, args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	port := strings.Split(testutil.FreeAddr(t), ":")[1]
	code, out := run("--raft-addr", "0.0.0.0:"+port, "--http-addr", testutil.FreeAddr(t))
	if code != 2 || !strings.Contains(out, "--peer-cert") || !strings.Contains(out, "--insecure") {
		t.Fatalf("--raft-addr 0.0.0.0 without peer TLS: exit %d\n%s", code, out)
	}
	base := t.TempDir()
	n1 := &proc{id: "n1", http: testutil.FreeAddr(t), raft: testutil.FreeAddr(t), dir: filepath.Join(base, "n1"),
		args: []string{"--node-id", "n1", "--bootstrap", "--admit", "n2"}}
	n1.launch(t, bin, 0)
	awaitStatus(t, n1, "/readyz", 200, "")
	// The joiner without --insecure refuses to start.
	code, out = run("--node-id", "n2", "--http-addr", testutil.FreeAddr(t), "--raft-addr", testutil.FreeAddr(t), "--join", n1.http)
	if code != 2 || !strings.Contains(out, "--insecure") {
		t.Fatalf("plaintext join without --insecure: exit %d\n%s", code, out)
	}
	// A joiner with --insecure is refused by a member without it.
	n2 := &proc{id: "n2", http: testutil.FreeAddr(t), raft: testutil.FreeAddr(t), dir: filepath.Join(base, "n2"),
		args: []string{"--node-id", "n2", "--insecure", "--join", n1.http}}
	n2.launch(t, bin, 0)
	select {
	case <-n2.exited:
	case <-time.After(time.Minute):
		t.Fatalf("n2 still runs after its join was refused:\n%s", n2.logText(t))
	}
	if log := n2.logText(t); !strings.Contains(log, "plaintext_cluster") {
		t.Fatalf("n2's refused join does not say why:\n%s", log)
	}
	if m := memberIDs(statusOf(t, n1, "")); m != "n1" {
		t.Fatalf("members after a refused plaintext join: %s", m)
	}
	// Both with --insecure: n1 logs it loudly, and n2 joins.
	n1.stop()
	n1.args = append(n1.args, "--insecure")
	n1.launch(t, bin, 1)
	awaitStatus(t, n1, "/readyz", 200, "")
	if !strings.Contains(n1.logText(t), "INSECURE: no peer TLS") {
		t.Errorf("n1 with --insecure and no peer TLS did not warn:\n%s", n1.logText(t))
	}
	_ = os.RemoveAll(n2.dir)
	n2.launch(t, bin, 1)
	awaitStatus(t, n2, "/readyz", 200, "")
	if m := memberIDs(statusOf(t, n1, "")); m != "n1,n2" {
		t.Fatalf("members after an insecure join: %s", m)
	}
}

// An entry no binary of this release decodes, committed through a real
// member's credentials (n1's node certificate, speaking Raft to the
// others as n1 with a newer term), halts applying on every replica: each
// stays up, not ready, with the metric set and one log line, across 3
// restarts; a binary that knows the entry (built with srdd_futureentry,
// standing for the next release) resumes them all.
func TestUndecodableEntryHaltsEveryReplica(t *testing.T) {
	bin := buildSrdd(t)
	next := filepath.Join(t.TempDir(), "srdd-next")
	if out, err := exec.Command("go", "build", "-tags", "srdd_futureentry", "-o", next, ".").CombinedOutput(); err != nil {
		t.Fatalf("build with srdd_futureentry: %v\n%s", err, out)
	}
	certs := newPKI(t, bin)
	ps := threeNodes(t, bin, certs)
	v := statusOf(t, ps[0], "")
	var sender *proc
	for _, p := range ps {
		if p.id == v.Leader {
			sender = p
		}
	}
	if sender == nil {
		t.Fatalf("no leader: %+v", v)
	}
	var term uint64
	fmt.Sscan(v.Term, &term)
	creds := certs.creds(sender.id)
	rc := newRaftClient(t, func(addr string, timeout time.Duration) (net.Conn, error) {
		return cluster.DialPeerRaft(creds, addr, timeout)
	})
	entry := append([]byte{cluster.EntryVersion, cluster.FutureEntryType}, 0x80) // an empty msgpack map
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(sender.id), Addr: []byte(sender.raft)}
	for _, p := range ps {
		if p == sender {
			continue
		}
		// An empty AppendEntries in term+1 tells the follower's last index.
		var probe raft.AppendEntriesResponse
		if err := rc.AppendEntries(raft.ServerID(p.id), raft.ServerAddress(p.raft),
			&raft.AppendEntriesRequest{RPCHeader: hdr, Term: term + 1}, &probe); err != nil || !probe.Success {
			t.Fatalf("probe of %s: %+v %v", p.id, probe, err)
		}
		var resp raft.AppendEntriesResponse
		ok := false
		for prevTerm := term; prevTerm >= 1 && !ok; prevTerm-- {
			err := rc.AppendEntries(raft.ServerID(p.id), raft.ServerAddress(p.raft), &raft.AppendEntriesRequest{
				RPCHeader: hdr, Term: term + 1,
				PrevLogEntry: probe.LastLog, PrevLogTerm: prevTerm, LeaderCommitIndex: probe.LastLog + 1,
				Entries: []*raft.Log{{Index: probe.LastLog + 1, Term: term + 1, Type: raft.LogCommand, Data: entry}},
			}, &resp)
			ok = err == nil && resp.Success
		}
		if !ok {
			t.Fatalf("%s did not take the entry: %+v", p.id, resp)
		}
	}
	halted := func(run int) {
		t.Helper()
		for _, p := range ps {
			awaitStatus(t, p, "/readyz", 503, `"unknown_entry"`)
		}
		time.Sleep(2 * time.Second) // no crash, no exit
		for _, p := range ps {
			if !p.alive() {
				t.Fatalf("run %d: %s exited:\n%s", run, p.id, p.logText(t))
			}
			awaitStatus(t, p, "/healthz", 200, "")
			awaitStatus(t, p, "/metrics", 200, "srdd_registry_apply_halted 1")
			if n := strings.Count(p.logText(t), "registry applying HALTED"); n != 1 {
				t.Fatalf("run %d: %s logged the halt %d times, want once:\n%s", run, p.id, n, p.logText(t))
			}
		}
		// No write goes through a halted registry.
		if st, b, _ := call("POST", "http://"+ps[0].http+"/v1/cluster/admit", `{"id":"n9"}`, ""); st != 503 {
			t.Fatalf("run %d: a registry write while halted: %d %s, want 503", run, st, b)
		}
	}
	halted(0)
	// Restarts: n1 without its explicit --bootstrap, which a node that
	// belongs to a cluster refuses (bootstrap is on by default, and a
	// node with Raft state ignores it).
	ps[0].args = slices.DeleteFunc(ps[0].args, func(a string) bool { return a == "--bootstrap" })
	for run := 1; run <= 3; run++ {
		for _, p := range ps {
			p.stop()
		}
		for _, p := range ps {
			p.launch(t, bin, run)
		}
		halted(run)
	}
	// The next release knows the entry: every replica resumes.
	for _, p := range ps {
		p.stop()
	}
	for _, p := range ps {
		p.launch(t, next, 4)
	}
	for _, p := range ps {
		awaitStatus(t, p, "/readyz", 200, "")
		awaitStatus(t, p, "/metrics", 200, "srdd_registry_apply_halted 0")
	}
	if st, b, _ := call("POST", "http://"+ps[1].http+"/v1/cluster/admit", `{"id":"n9"}`, ""); st != 200 {
		t.Fatalf("a registry write after resuming: %d %s", st, b)
	}
}

// callHeaders is call with arbitrary headers ("" values are not sent)
// and no timeout.
func callHeaders(method, url, body string, hdr map[string]string) (int, []byte, error) {
	return callVia(http.DefaultClient, method, url, body, hdr)
}
