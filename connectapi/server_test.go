package connectapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/srdd/srdd/auth"
	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/rawgrpc"
	"github.com/srdd/srdd/sessions"
	"github.com/srdd/srdd/sparkbridge/bridgetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	execute = "/spark.connect.SparkConnectService/ExecutePlan"
	config  = "/spark.connect.SparkConnectService/Config"
	echoTok = "0123456789abcdef0123456789abcdef"
)

// fakeSessions serves sessions from a table; every local active session
// is proxied to one echo server (bridgetest's fake Spark Connect).
type fakeSessions struct {
	recs      map[string]cluster.Session // by id and by name
	backend   *Backend
	attachErr error
	refreshes atomic.Int64
	panicOn   string
}

func (f *fakeSessions) Lookup(ref string) (cluster.Session, error) {
	if ref == f.panicOn {
		panic("lookup exploded")
	}
	rec, ok := f.recs[ref]
	if !ok {
		return cluster.Session{}, fmt.Errorf("%w: %q", sessions.ErrNotFound, ref)
	}
	return rec, nil
}

func (f *fakeSessions) Attach(ctx context.Context, id int64) (*Backend, error) {
	if f.attachErr != nil {
		return nil, f.attachErr
	}
	return f.backend, nil
}

type rig struct {
	addr     string
	sessions *fakeSessions
	authn    *auth.Authenticator
	tokens   map[string]string // user -> bearer token
	done     chan struct{}     // closes the backend's session
	srv      *Server
	peerAddr string      // ServePeer's listener
	removed  atomic.Bool // n0, the member on peerAddr, was removed
}

// idListener's connections prove node id, as the peer mux's do.
type idListener struct {
	net.Listener
	id string
}

func (l idListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return idConn{c, l.id}, nil
}

type idConn struct {
	net.Conn
	id string
}

func (c idConn) PeerNodeID() string { return c.id }

// waitIdle waits until no stream holds a slot. A client sees a stream's
// status (a message over the limit, say) before the node's handler has
// returned and freed its slot, so a test that counts slots waits here.
func (r *rig) waitIdle(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); len(r.srv.slots) > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams still hold a slot", len(r.srv.slots))
		}
	}
}

// start serves the port on a fake node "n1" holding sessions 1 ("etl",
// owner ana) on n1, 2 on n2 and 3 dead; users: ana (code), bob (code,
// not a modify user), eve (read only), root (admin). Without withAuth
// there is no users file.
func start(t *testing.T, withAuth bool, cfg Config) *rig {
	t.Helper()
	r := &rig{tokens: map[string]string{}, done: make(chan struct{})}
	echo, err := bridgetest.StartEcho(echoTok, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(echo.Stop)
	conn, err := grpc.NewClient("passthrough:///"+echo.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	fs := &fakeSessions{recs: map[string]cluster.Session{}}
	fs.backend = &Backend{Conn: conn, Token: echoTok, Done: r.done,
		Refresh: func(context.Context) error { fs.refreshes.Add(1); return nil }}
	one := cluster.Session{ID: 1, Name: "etl", Node: "n1", Status: cluster.SessionActive, Principal: "ana"}
	fs.recs["1"], fs.recs["etl"] = one, one
	fs.recs["2"] = cluster.Session{ID: 2, Node: "n2", Status: cluster.SessionActive, Principal: "ana"}
	fs.recs["3"] = cluster.Session{ID: 3, Node: "n1", Status: cluster.SessionDead, Reason: "interpreter exited", Principal: "ana"}
	r.sessions = fs
	if withAuth {
		f := &auth.File{}
		for _, u := range []struct {
			name  string
			roles []string
		}{{"ana", []string{"code"}}, {"bob", []string{"code"}}, {"eve", []string{"read:*"}}, {"root", []string{"admin"}}} {
			tok, err := auth.NewToken()
			if err != nil {
				t.Fatal(err)
			}
			if err := f.AddUser(u.name, u.roles, tok, "pw-"+u.name); err != nil {
				t.Fatal(err)
			}
			r.tokens[u.name] = tok
		}
		path := filepath.Join(t.TempDir(), "users.json")
		if err := auth.WriteFile(path, f); err != nil {
			t.Fatal(err)
		}
		if r.authn, err = auth.New(path, nil); err != nil {
			t.Fatal(err)
		}
		cfg.Auth = r.authn
	}
	cfg.Sessions = fs
	if cfg.AdmitPeer == nil {
		cfg.AdmitPeer = func(id string) error {
			if id != "n0" || r.removed.Load() {
				return errors.New("not a member")
			}
			return nil
		}
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "n1"
	}
	srv := New(cfg)
	r.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Close)
	r.addr = ln.Addr().String()
	// The server for routed streams, as a member's peer channel reaches
	// it: each connection proves node n0, a member unless r.removed.
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.ServePeer(idListener{pln, "n0"}) }()
	r.peerAddr = pln.Addr().String()
	return r
}

// answer is one stream's answer, the messages as strings.
type answer struct {
	msgs    []string
	header  metadata.MD
	trailer metadata.MD
	err     error
}

// call opens a stream of method with metadata md (key, value pairs),
// sends msgs, closes its send side and reads the answer.
func (r *rig) call(t *testing.T, method string, msgs []string, md ...string) answer {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+r.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), metadata.Pairs(md...)), 20*time.Second)
	defer cancel()
	frames := make([]rawgrpc.Frame, len(msgs))
	for i, m := range msgs {
		frames[i] = rawgrpc.Frame(m)
	}
	got := rawgrpc.Exchange(ctx, conn, method, frames, nil)
	a := answer{header: got.Header, trailer: got.Trailer, err: got.Err}
	for _, f := range got.Msgs {
		a.msgs = append(a.msgs, string(f))
	}
	return a
}

func wantCode(t *testing.T, a answer, code codes.Code, inMsg string) {
	t.Helper()
	st := status.Convert(a.err)
	if st.Code() != code || !strings.Contains(st.Message(), inMsg) {
		t.Fatalf("status = %v %q, want %v containing %q", st.Code(), st.Message(), code, inMsg)
	}
}

func TestProxyForwardsStreamsMetadataAndStatus(t *testing.T) {
	r := start(t, false, Config{})
	a := r.call(t, execute, []string{"one", "two", "", "three"}, SessionHeader, "etl", "x-custom", "v", "authorization", "Bearer client-secret")
	if a.err != nil {
		t.Fatal(a.err)
	}
	if strings.Join(a.msgs, "|") != "one|two||three" {
		t.Fatalf("echoed %q", a.msgs)
	}
	if got := a.header.Get(bridgetest.EchoHeaderMethod); len(got) != 1 || got[0] != execute {
		t.Fatalf("backend saw method %v", got)
	}
	keys := strings.Split(a.header.Get(bridgetest.EchoHeaderKeys)[0], ",")
	has := map[string]bool{}
	for _, k := range keys {
		has[k] = true
	}
	// The backend's own token replaced the client's (the echo checks it);
	// srdd's session key stays on this side.
	if !has["x-custom"] || !has["authorization"] || has[SessionHeader] {
		t.Fatalf("backend saw metadata keys %v", keys)
	}
	if got := a.trailer.Get(bridgetest.EchoTrailerCount); len(got) != 1 || got[0] != "4" {
		t.Fatalf("trailer count %v", got)
	}
	if n := r.sessions.refreshes.Load(); n != 1 {
		t.Fatalf("views refreshed %d times before one ExecutePlan, want 1", n)
	}
	// Not a plan: no refresh. Session by id.
	if a := r.call(t, config, []string{"c"}, SessionHeader, "1"); a.err != nil || len(a.msgs) != 1 {
		t.Fatalf("Config: %v %q", a.err, a.msgs)
	}
	if n := r.sessions.refreshes.Load(); n != 1 {
		t.Fatalf("views refreshed before a Config call (%d)", n)
	}
	// The backend's error status reaches the client unchanged, with the trailer.
	a = r.call(t, "/spark.connect.SparkConnectService/Fail", []string{"x"}, SessionHeader, "1")
	wantCode(t, a, codes.Aborted, "failed as asked")
	if got := a.trailer.Get(bridgetest.EchoTrailerCount); len(got) != 1 || got[0] != "1" {
		t.Fatalf("trailer of a failed stream: %v", a.trailer)
	}
}

func TestChoosingTheSession(t *testing.T) {
	r := start(t, false, Config{})
	wantCode(t, r.call(t, execute, nil), codes.InvalidArgument, "x-srdd-session")
	wantCode(t, r.call(t, execute, nil, SessionHeader, ""), codes.InvalidArgument, "x-srdd-session")
	wantCode(t, r.call(t, execute, nil, SessionHeader, "1", SessionHeader, "2"), codes.InvalidArgument, "x-srdd-session")
	wantCode(t, r.call(t, execute, nil, SessionHeader, "nope"), codes.NotFound, `"nope"`)
	wantCode(t, r.call(t, execute, nil, SessionHeader, "2"), codes.FailedPrecondition, "runs on node n2")
	wantCode(t, r.call(t, execute, nil, SessionHeader, "3"), codes.FailedPrecondition, "interpreter exited")
	r.sessions.attachErr = fmt.Errorf("%w: session 1 is still starting", sessions.ErrNotReady)
	wantCode(t, r.call(t, execute, nil, SessionHeader, "1"), codes.Unavailable, "still starting")
	r.sessions.attachErr = errors.New("connection refused")
	wantCode(t, r.call(t, execute, nil, SessionHeader, "1"), codes.Unavailable, "connection refused")
}

func TestAuthIsSrdds(t *testing.T) {
	r := start(t, true, Config{})
	bearer := func(user string) string { return "Bearer " + r.tokens[user] }
	basic := func(user, pw string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw)) }
	wantCode(t, r.call(t, execute, nil, SessionHeader, "1"), codes.Unauthenticated, "needs srdd credentials")
	wantCode(t, r.call(t, execute, nil, SessionHeader, "1", "authorization", "Bearer wrong"), codes.Unauthenticated, "unknown token")
	wantCode(t, r.call(t, execute, nil, SessionHeader, "1", "authorization", basic("ana", "wrong")), codes.Unauthenticated, "wrong user name or password")
	wantCode(t, r.call(t, execute, nil, SessionHeader, "1", "authorization", "Digest x"), codes.Unauthenticated, "unsupported")
	// Credentials come before the session: an unknown session is not
	// told to a stranger.
	wantCode(t, r.call(t, execute, nil, SessionHeader, "nope", "authorization", "Bearer wrong"), codes.Unauthenticated, "unknown token")
	// ana owns session 1; bob has the code role but no access to it; eve
	// has no code role; root is an admin.
	for _, user := range []string{"ana", "root"} {
		if a := r.call(t, execute, []string{"m"}, SessionHeader, "etl", "authorization", bearer(user)); a.err != nil {
			t.Fatalf("%s: %v", user, a.err)
		}
	}
	if a := r.call(t, execute, []string{"m"}, SessionHeader, "1", "authorization", basic("ana", "pw-ana")); a.err != nil {
		t.Fatalf("ana with Basic: %v", a.err)
	}
	wantCode(t, r.call(t, execute, nil, SessionHeader, "1", "authorization", bearer("bob")), codes.PermissionDenied, "bob may not use session 1")
	wantCode(t, r.call(t, execute, nil, SessionHeader, "1", "authorization", bearer("eve")), codes.PermissionDenied, "code role")
	// A session's own capability runs no code over Spark Connect.
	capTok, revoke, err := r.authn.MintSession(1)
	if err != nil {
		t.Fatal(err)
	}
	defer revoke()
	wantCode(t, r.call(t, execute, nil, SessionHeader, "1", "authorization", "Bearer "+capTok), codes.PermissionDenied, "")
	// A modify user of the session may.
	rec := r.sessions.recs["1"]
	rec.ModifyUsers = []string{"bob"}
	r.sessions.recs["1"] = rec
	if a := r.call(t, execute, nil, SessionHeader, "1", "authorization", bearer("bob")); a.err != nil {
		t.Fatalf("bob as a modify user: %v", a.err)
	}
}

func TestBoundsAndFailuresCloseOnlyTheirStream(t *testing.T) {
	r := start(t, false, Config{MaxStreams: 1, MaxMessageBytes: 1 << 10})
	// A message over the limit ends that stream only.
	wantCode(t, r.call(t, execute, []string{strings.Repeat("x", 4<<10)}, SessionHeader, "1"), codes.ResourceExhausted, "")
	r.waitIdle(t)
	// A panic in the node's code answers Internal and the port serves on.
	r.sessions.panicOn = "boom"
	wantCode(t, r.call(t, execute, nil, SessionHeader, "boom"), codes.Internal, "internal error")
	r.waitIdle(t)
	if a := r.call(t, execute, []string{"ok"}, SessionHeader, "1"); a.err != nil {
		t.Fatalf("after a failed stream: %v", a.err)
	}
	r.waitIdle(t)

	// One stream open holds the only slot: another is refused.
	open, end := r.hold(t, execute, SessionHeader, "1")
	defer end()
	var got rawgrpc.Frame
	wantCode(t, r.call(t, execute, nil, SessionHeader, "1"), codes.ResourceExhausted, "limit")

	// The session ends under the open stream: it is told so, and the slot is freed.
	close(r.done)
	if err := open.RecvMsg(&got); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "session 1 ended") {
		t.Fatalf("stream of an ended session: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := r.call(t, config, nil, SessionHeader, "1")
		// The backend is still up in this test, but Done is closed: the
		// stream is ended at once, which shows the slot was freed.
		if status.Code(a.err) != codes.ResourceExhausted || time.Now().After(deadline) {
			if status.Code(a.err) == codes.ResourceExhausted {
				t.Fatal("the ended stream's slot was never freed")
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}
