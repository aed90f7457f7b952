package connectapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/sparkbridge/bridgetest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
)

// TestRoutedStreams: the server for routed streams believes the caller a
// member vouches for, looked up in its own users file, and checks it
// against the session as a client's call is checked; the client port
// never believes a vouched caller.
func TestRoutedStreams(t *testing.T) {
	r := start(t, true, Config{})
	peer := &rig{addr: r.peerAddr}
	if a := peer.call(t, execute, []string{"m"}, SessionHeader, "1", principalHeader, "ana"); a.err != nil || strings.Join(a.msgs, "") != "m" {
		t.Fatalf("routed for ana: %q %v", a.msgs, a.err)
	}
	wantCode(t, peer.call(t, execute, nil, SessionHeader, "1"), codes.Unauthenticated, "names its caller")
	wantCode(t, peer.call(t, execute, nil, SessionHeader, "1", principalHeader, "mallory"), codes.Unauthenticated, `unknown user "mallory"`)
	wantCode(t, peer.call(t, execute, nil, SessionHeader, "1", principalHeader, "bob"), codes.PermissionDenied, "bob may not use session 1")
	// A routed stream for a session on yet another node is not routed again.
	wantCode(t, peer.call(t, execute, nil, SessionHeader, "2", principalHeader, "ana"), codes.FailedPrecondition, "runs on node n2")
	// A member removed since its connection was made: each stream is
	// checked, so the open connection serves no more.
	r.removed.Store(true)
	wantCode(t, peer.call(t, execute, nil, SessionHeader, "1", principalHeader, "ana"), codes.PermissionDenied, "node n0 is not a member")
	r.removed.Store(false)
	// A connection that is no peer channel never gets a stream through.
	bare := start(t, true, Config{})
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = bare.srv.ServePeer(pln) }()
	if a := (&rig{addr: pln.Addr().String()}).call(t, execute, nil, SessionHeader, "1", principalHeader, "ana"); a.err == nil {
		t.Fatal("a plain connection reached the routed streams' server")
	}
	// The client port: x-srdd-principal is no credential.
	wantCode(t, r.call(t, execute, nil, SessionHeader, "1", principalHeader, "root"), codes.Unauthenticated, "needs srdd credentials")
}

// dialFunc is a PeerDialer that dials one address, whatever the node.
type dialFunc func(ctx context.Context, id string) (net.Conn, error)

func (f dialFunc) DialConnect(ctx context.Context, id string) (net.Conn, error) { return f(ctx, id) }

// TestRouteToTheSessionsNode: a stream for a session on another node is
// forwarded to that node's server for routed streams, with the caller
// vouched for and the session named; the client's own credential and
// x-srdd-* metadata do not travel; an unreachable node is UNAVAILABLE.
func TestRouteToTheSessionsNode(t *testing.T) {
	owner := start(t, true, Config{}) // "n1" holds session 1
	var mu sync.Mutex
	var dialed []string
	dials := func() string { mu.Lock(); defer mu.Unlock(); return strings.Join(dialed, ",") }
	front := start(t, true, Config{NodeID: "n0", Peers: dialFunc(func(ctx context.Context, id string) (net.Conn, error) {
		mu.Lock()
		dialed = append(dialed, id)
		mu.Unlock()
		return (&net.Dialer{}).DialContext(ctx, "tcp", owner.peerAddr)
	})})
	// The front's own table says session 1 is on n1, not on n0.
	a := front.call(t, execute, []string{"plan"}, SessionHeader, "etl", "authorization", "Bearer "+front.tokens["ana"], "x-srdd-principal", "root")
	if a.err != nil || strings.Join(a.msgs, "") != "plan" {
		t.Fatalf("routed: %q %v", a.msgs, a.err)
	}
	if dials() != "n1" {
		t.Fatalf("dialed %q", dials())
	}
	// Counted once over the nodes: as a stream where it ran, as routed
	// where it came in.
	front.waitIdle(t)
	owner.waitIdle(t)
	if got := []float64{promtest.ToFloat64(front.srv.m.routed.WithLabelValues("OK")), promtest.ToFloat64(front.srv.m.streams.WithLabelValues("ExecutePlan", "OK")),
		promtest.ToFloat64(owner.srv.m.streams.WithLabelValues("ExecutePlan", "OK"))}; got[0] != 1 || got[1] != 0 || got[2] != 1 {
		t.Fatalf("routed, front's streams, owner's streams = %v, want 1 0 1", got)
	}
	keys := a.header.Get(bridgetest.EchoHeaderKeys)[0]
	if strings.Contains(keys, "x-srdd") {
		t.Fatalf("the backend saw srdd's metadata: %s", keys)
	}
	// The owner ran it as ana: her plan counts there (cap 32, so a second
	// one runs); bob is refused by the front, before any routing.
	wantCode(t, front.call(t, execute, nil, SessionHeader, "1", "authorization", "Bearer "+front.tokens["bob"]), codes.PermissionDenied, "bob may not use session 1")
	if dials() != "n1" {
		t.Fatalf("a refused stream was routed: %q", dials())
	}
	unreachable := start(t, true, Config{NodeID: "n0", Peers: dialFunc(func(ctx context.Context, id string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Err: context.DeadlineExceeded}
	})})
	wantCode(t, unreachable.call(t, execute, nil, SessionHeader, "1", "authorization", "Bearer "+unreachable.tokens["ana"]), codes.Unavailable, "")
}

// TestPeerConnsForgetRemovedMembers: making a connection to a member
// closes and forgets those of nodes removed since (review finding: the
// map kept one entry per node ever routed to).
func TestPeerConnsForgetRemovedMembers(t *testing.T) {
	members := map[string]bool{"a": true, "b": true, "c": true, "d": true}
	unreadable := false // the membership cannot be read: forget nothing
	var mu sync.Mutex
	s := New(Config{NodeID: "n1",
		Peers: dialFunc(func(context.Context, string) (net.Conn, error) { return nil, errors.New("not dialled here") }),
		AdmitPeer: func(id string) error {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case unreadable:
				return errors.New("raft: shutdown")
			case !members[id]:
				return fmt.Errorf("node %q is %w", id, cluster.ErrNotMember)
			}
			return nil
		}})
	defer s.Close()
	for _, id := range []string{"a", "b"} {
		if _, err := s.peerConn(id); err != nil {
			t.Fatal(err)
		}
	}
	a := s.peerConns["a"]
	kept := func() string {
		var ids []string
		for id := range s.peerConns {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		return strings.Join(ids, ",")
	}
	mu.Lock()
	delete(members, "a")
	unreadable = true
	mu.Unlock()
	if _, err := s.peerConn("c"); err != nil {
		t.Fatal(err)
	}
	if got := kept(); got != "a,b,c" {
		t.Fatalf("with the membership unreadable, connections kept for %s, want a,b,c", got)
	}
	mu.Lock()
	unreadable = false
	mu.Unlock()
	if _, err := s.peerConn("d"); err != nil {
		t.Fatal(err)
	}
	if got := kept(); got != "b,c,d" {
		t.Fatalf("connections kept for %s, want b,c,d", got)
	}
	if st := a.GetState(); st != connectivity.Shutdown {
		t.Fatalf("the removed member's connection is %v, want closed", st)
	}
}
