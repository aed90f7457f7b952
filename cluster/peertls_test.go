package cluster

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/srdd/srdd/internal/peerid/peeridtest"
	"github.com/srdd/srdd/internal/testutil"
)

func openPeerNode(t *testing.T, id string, ca *peeridtest.CA, bootstrap bool) *Node {
	t.Helper()
	f := ca.Node(t, id)
	creds, err := LoadPeerCreds(f.Cert, f.Key, ca.File)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Open(Config{
		NodeID: id, RaftAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:1", DataDir: t.TempDir(), Bootstrap: bootstrap,
		// 1 s: a leader of two must not lose its lease on a loaded machine.
		HeartbeatTimeout: time.Second, ElectionTimeout: time.Second,
		Peer: creds, Logger: testutil.Logger(t, hclog.Warn),
	})
	if err != nil {
		t.Fatalf("open %s: %v", id, err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// twoPeerNodes is a leader n1 and a follower n2 with peer TLS.
func twoPeerNodes(t *testing.T, ca *peeridtest.CA) (*Node, *Node) {
	t.Helper()
	n1 := openPeerNode(t, "n1", ca, true)
	if err := n1.WaitForLeader(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	n2 := openPeerNode(t, "n2", ca, false)
	if err := n1.Admit("n2", true, "test"); err != nil {
		t.Fatal(err)
	}
	if err := n1.Join("n2", n2.RaftAddr(), "127.0.0.1:2", true, false); err != nil {
		t.Fatal(err)
	}
	if err := n2.WaitForLeader(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Replication over the peer channel: the follower applies a write.
	if _, err := n1.Apply(Command{Type: CmdCreateSession, Body: &CreateSession{Name: "s", Node: "n1"}}); err != nil {
		t.Fatal(err)
	}
	if err := testutil.WaitFor(20*time.Second, func() (bool, error) { _, ok := n2.SessionByName("s"); return ok, nil }); err != nil {
		t.Fatalf("follower never applied the write: %v", err)
	}
	return n1, n2
}

func term(n *Node) string { return n.Stats()["term"] }

// tlsStream is a raft.StreamLayer for an attacker (or a test peer) that
// speaks the peer channel with a given TLS client configuration.
type tlsStream struct {
	cfg *tls.Config
	ln  net.Listener
}

func (s *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(addr), s.cfg)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{muxRaft}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
func (s *tlsStream) Accept() (net.Conn, error) { return s.ln.Accept() }
func (s *tlsStream) Close() error              { return s.ln.Close() }
func (s *tlsStream) Addr() net.Addr            { return s.ln.Addr() }

func attacker(t *testing.T, cfg *tls.Config) raft.Transport {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var tr raft.Transport
	if cfg == nil {
		addr := ln.Addr().String()
		ln.Close()
		tr, err = raft.NewTCPTransport(addr, nil, 2, 5*time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
	} else {
		tr = raft.NewNetworkTransport(&tlsStream{cfg: cfg, ln: ln}, 2, 5*time.Second, nil)
	}
	t.Cleanup(func() { _ = tr.(raft.WithClose).Close() })
	return tr
}

func clientCfg(t *testing.T, f peeridtest.Files, ca *peeridtest.CA) *tls.Config {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{kp}, InsecureSkipVerify: true} //nolint:gosec // an attacker
	if ca != nil {
		cfg.InsecureSkipVerify = false
		cfg.RootCAs = ca.Pool()
		cfg.ServerName = "127.0.0.1"
	}
	return cfg
}

// forge sends an AppendEntries and a RequestVote with a term far ahead,
// claiming to come from claimID, and reports the errors.
func forge(tr raft.Transport, target *Node, claimID string, high uint64) (error, error) {
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(claimID), Addr: []byte(tr.LocalAddr())}
	var ar raft.AppendEntriesResponse
	aerr := tr.AppendEntries(raft.ServerID(target.ID()), raft.ServerAddress(target.RaftAddr()),
		&raft.AppendEntriesRequest{RPCHeader: hdr, Term: high, PrevLogEntry: 1, PrevLogTerm: 1, LeaderCommitIndex: 1}, &ar)
	var vr raft.RequestVoteResponse
	verr := tr.RequestVote(raft.ServerID(target.ID()), raft.ServerAddress(target.RaftAddr()),
		&raft.RequestVoteRequest{RPCHeader: hdr, Term: high, LastLogIndex: 1 << 40, LastLogTerm: high}, &vr)
	return aerr, verr
}

// TestNonMemberCannotAppendOrVote: a plaintext hashicorp/raft transport,
// a certificate from another CA, and a valid certificate of a node that
// is not a member all fail; the leader's term does not move.
func TestNonMemberCannotAppendOrVote(t *testing.T) {
	ca := peeridtest.NewCA(t, "cluster-ca")
	n1, n2 := twoPeerNodes(t, ca)
	before1, before2 := term(n1), term(n2)
	other := peeridtest.NewCA(t, "other-ca")
	for _, tc := range []struct {
		name string
		tr   raft.Transport
		as   string
	}{
		{"plaintext", attacker(t, nil), "evil"},
		{"plaintext claiming n2", attacker(t, nil), "n2"},
		{"no certificate", attacker(t, &tls.Config{InsecureSkipVerify: true}), "n2"}, //nolint:gosec // an attacker
		{"another CA", attacker(t, clientCfg(t, other.Node(t, "n2"), nil)), "n2"},
		{"non-member of the CA", attacker(t, clientCfg(t, ca.Node(t, "n9"), nil)), "n9"},
	} {
		for _, target := range []*Node{n1, n2} {
			aerr, verr := forge(tc.tr, target, tc.as, 1000)
			if aerr == nil || verr == nil {
				t.Errorf("%s -> %s: append err %v, vote err %v; want both refused", tc.name, target.ID(), aerr, verr)
			}
		}
	}
	if a1, a2 := term(n1), term(n2); a1 != before1 || a2 != before2 {
		t.Fatalf("terms moved: n1 %s -> %s, n2 %s -> %s", before1, a1, before2, a2)
	}
	if !n1.IsLeader() {
		t.Fatal("n1 lost leadership")
	}
}

// TestMemberCannotSpeakAsAnother: n2's valid certificate, with RPCs that
// claim to come from n1, is refused; the same RPC as n2 is answered.
func TestMemberCannotSpeakAsAnother(t *testing.T) {
	ca := peeridtest.NewCA(t, "cluster-ca")
	n1, n2 := twoPeerNodes(t, ca)
	f := ca.Node(t, "n2") // a second valid certificate for n2
	tr := attacker(t, clientCfg(t, f, nil))
	before := term(n1)
	aerr, verr := forge(tr, n1, "n1", 1000)
	if aerr == nil || verr == nil {
		t.Fatalf("n2's certificate speaking as n1: append err %v, vote err %v; want both refused", aerr, verr)
	}
	if after := term(n1); after != before {
		t.Fatalf("term moved %s -> %s", before, after)
	}
	// Control: the same connection kind as n2 itself, with a stale term,
	// is answered (and refused by Raft for its term, not its identity).
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("n2"), Addr: []byte(n2.RaftAddr())}
	var vr raft.RequestVoteResponse
	if err := tr.RequestVote("n1", raft.ServerAddress(n1.RaftAddr()), &raft.RequestVoteRequest{RPCHeader: hdr, Term: 0}, &vr); err != nil {
		t.Fatalf("n2 as itself: %v", err)
	}
	if vr.Granted {
		t.Fatal("a stale vote request was granted")
	}
}

// TestPeerCertMustNameThisNode: a node refuses to start with another
// node's certificate.
func TestPeerCertMustNameThisNode(t *testing.T) {
	ca := peeridtest.NewCA(t, "cluster-ca")
	f := ca.Node(t, "n2")
	creds, err := LoadPeerCreds(f.Cert, f.Key, ca.File)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(Config{NodeID: "n1", RaftAddr: "127.0.0.1:0", DataDir: t.TempDir(), Bootstrap: true, Peer: creds})
	if err == nil {
		t.Fatal("opened with n2's certificate as n1")
	}
}

// TestDialChecksTheServersIdentity: a node dialling member n2 refuses a
// server that proves another node ID.
func TestDialChecksTheServersIdentity(t *testing.T) {
	ca := peeridtest.NewCA(t, "cluster-ca")
	n1, n2 := twoPeerNodes(t, ca)
	if _, err := n1.mux.dial(t.Context(), n2.RaftAddr(), muxHTTP, "n3"); err == nil {
		t.Fatal("dial expecting n3 reached n2")
	}
	c, err := n1.mux.dial(t.Context(), n2.RaftAddr(), muxHTTP, "n2")
	if err != nil {
		t.Fatalf("dial expecting n2: %v", err)
	}
	c.Close()
	var opErr *net.OpError
	if _, err := n1.mux.dial(t.Context(), n2.RaftAddr(), muxHTTP, "n3"); !errors.As(err, &opErr) || opErr.Op != "dial" {
		t.Fatalf("a refused handshake must be a dial error (never reached the peer): %v", err)
	}
}

// TestReloadKeepsTheNodeID: a SIGHUP reload that finds a certificate
// naming another node refuses it and keeps serving the loaded one.
func TestReloadKeepsTheNodeID(t *testing.T) {
	ca := peeridtest.NewCA(t, "reload-ca")
	n1, n2 := ca.Node(t, "n1"), ca.Node(t, "n2")
	p, err := LoadPeerCreds(n1.Cert, n1.Key, ca.File)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range [][2]string{{n2.Cert, n1.Cert}, {n2.Key, n1.Key}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Reload(); err == nil || !strings.Contains(err.Error(), `"n2"`) {
		t.Fatalf("reload of n2's certificate as n1: %v, want a refusal naming n2", err)
	}
	if id := p.NodeID(); id != "n1" {
		t.Fatalf("after the refused reload the node proves %q, want n1", id)
	}
}

// TestConnectChannel: Spark Connect channels reach a node's
// ConnectListener only once it asked for one, and only from a member;
// the channel is the member's, proven by its certificate.
func TestConnectChannel(t *testing.T) {
	ca := peeridtest.NewCA(t, "cluster-ca")
	n1, n2 := twoPeerNodes(t, ca)
	// n2 serves no Spark Connect yet: the channel is closed at once.
	c, err := n1.DialConnect(t.Context(), "n2")
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("a node without a Spark Connect port kept the channel")
	}
	c.Close()

	ln := n2.ConnectListener()
	defer ln.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	c, err = n1.DialConnect(t.Context(), "n2")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case got := <-accepted:
		if pc, ok := got.(*PeerConn); !ok || pc.PeerNodeID() != "n1" {
			t.Fatalf("accepted %T %v", got, got)
		}
		got.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the member's channel was not accepted")
	}
	// A node whose certificate chains to the CA but is no member: closed.
	stranger := openPeerNode(t, "n9", ca, true)
	c9, err := stranger.mux.dial(t.Context(), n2.RaftAddr(), muxConnect, "n2")
	if err != nil {
		t.Fatal(err)
	}
	defer c9.Close()
	_ = c9.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c9.Read(make([]byte, 1)); err == nil {
		t.Fatal("a non-member's channel was kept")
	}
	select {
	case got, ok := <-accepted:
		if ok {
			t.Fatalf("a non-member's channel was accepted: %v", got)
		}
	default:
	}
	// Closed, the listener ends its Accept.
	ln.Close()
	if _, ok := <-accepted; ok {
		t.Fatal("Accept went on after Close")
	}
}
