// Package connectapi is the node's Spark Connect port (--connect-addr,
// issue 27): a gRPC server that authenticates a Spark Connect client with
// srdd's users file, picks the session its x-srdd-session metadata names,
// and proxies every stream, unary or streaming, of any method, to the
// Spark Connect server running inside that session's own SparkContext.
// It carries the messages as bytes (internal/rawgrpc), so it needs none
// of Spark Connect's protos. connectapi/DESIGN.md says why it is shaped
// so.
package connectapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/srdd/srdd/auth"
	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/httpapi"
	"github.com/srdd/srdd/internal/defaults"
	"github.com/srdd/srdd/internal/rawgrpc"
	"github.com/srdd/srdd/sessions"
	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// SessionHeader is the metadata key that names the session (an id or a
// session name): pyspark sends the connection string's
// ;x-srdd-session=3 parameter as it.
const SessionHeader = "x-srdd-session"

// Defaults.
const (
	DefaultMaxStreams = 1024
	DefaultMaxConns   = 4096
	// DefaultMaxMessageBytes is Spark Connect's own default
	// (spark.connect.grpc.maxInboundMessageSize).
	DefaultMaxMessageBytes = 128 << 20
	// DefaultMaxExecsPerSession and DefaultMaxExecsPerPrincipal cap the
	// plans (ExecutePlan and ReattachExecute streams) running at once in
	// one session, and for one principal across sessions.
	DefaultMaxExecsPerSession   = 32
	DefaultMaxExecsPerPrincipal = 32
	// DefaultIdleTimeout closes a client connection with no stream open
	// for this long (the client reconnects when it next calls).
	DefaultIdleTimeout = 30 * time.Minute
	// DefaultMaxArtifactBytes caps one AddArtifacts call (jars, Python
	// files, files and archives it uploads into the session).
	DefaultMaxArtifactBytes = 1 << 30
	// pingEvery and pingTimeout find a client that went away with streams
	// open (a laptop that slept): the node pings a connection silent for
	// pingEvery and closes it, ending its streams and freeing their
	// slots, if no answer comes within pingTimeout.
	pingEvery   = time.Minute
	pingTimeout = 20 * time.Second
	// refreshTimeout bounds the views refresh before a plan.
	refreshTimeout = 30 * time.Second
)

// Backend is the Spark Connect server of one live session.
type Backend struct {
	Conn  *grpc.ClientConn
	Token string // what the session's Spark Connect asks as its bearer token
	// Refresh makes the session's shared RDDs' global temp views current
	// (op connect.views); called before each plan is forwarded. Nil: none.
	Refresh func(ctx context.Context) error
	// Done is closed when the session's interpreter ends (nil: never, a
	// member's connection, whose own node says when the session ends).
	Done <-chan struct{}
	// Extra is metadata the node adds to each stream it forwards here (a
	// routed stream's session and vouched caller).
	Extra metadata.MD
}

// Sessions is what the port needs of the node.
type Sessions interface {
	// Lookup resolves an id or a session name to its registry record;
	// sessions.ErrNotFound if there is none.
	Lookup(ref string) (cluster.Session, error)
	// Attach answers the Spark Connect backend of session id, which runs
	// on this node, starting Spark Connect in it if needed. Its errors
	// are sessions' (ErrNotReady, ErrDead, ErrNotLocal, ...).
	Attach(ctx context.Context, id int64) (*Backend, error)
}

// Config wires the port to the node. Zero values mean "default".
type Config struct {
	Sessions Sessions
	// Auth, if set, is the users file: a stream needs srdd credentials
	// (a bearer token or Basic in its authorization metadata, or a
	// verified client certificate) of a principal that may run code in
	// the session. Nil: no auth (the node then binds loopback only).
	Auth *auth.Authenticator
	// TLS, if set, serves TLS (the API's certificate and client CA).
	TLS *tls.Config
	// NodeID names this node: a session on another node is refused with
	// its node's name.
	NodeID string
	// MaxStreams caps the streams open at once (RESOURCE_EXHAUSTED over
	// it); MaxConns the client connections; MaxMessageBytes one message.
	MaxStreams, MaxConns, MaxMessageBytes int
	// MaxExecsPerSession and MaxExecsPerPrincipal cap the plans running
	// at once (ExecutePlan and ReattachExecute streams) in one session and
	// for one principal (with a users file); RESOURCE_EXHAUSTED over them.
	MaxExecsPerSession, MaxExecsPerPrincipal int
	// IdleTimeout closes a client connection with no stream open for this
	// long.
	IdleTimeout time.Duration
	// MaxArtifactBytes caps what one AddArtifacts call uploads.
	MaxArtifactBytes int64
	// Peers, if set, opens Spark Connect channels to other members (peer
	// TLS): a stream for a session on another node is routed there. Nil:
	// such a stream is refused with the session's node.
	Peers PeerDialer
	// AdmitPeer says whether a node ID is a member now: each routed stream
	// is checked, not only its connection (a removed member's connection
	// may still be open). Nil: routed streams are refused.
	AdmitPeer func(id string) error
	// CheckConf, if set, rules each setting a Config call sets (the
	// session conf policy: sessions.Manager.CheckConf); a refusal ends the
	// call before Spark sees it.
	CheckConf func(key, val string) error
	// Registry, if set, gets the port's metrics (metrics.go).
	Registry prometheus.Registerer
	Logger   hclog.Logger
}

// Server is the Spark Connect port of one node.
type Server struct {
	cfg   Config
	srv   *grpc.Server
	audit hclog.Logger
	slots chan struct{} // one per open stream
	execs execCounts
	m     *connectMetrics
	open  openStreams // the streams this node runs, for the console

	// peerSrv serves the streams other members route here (routing.go);
	// peerConns are this node's connections to the others, by node ID.
	peerSrv   *grpc.Server
	mu        sync.Mutex
	closed    bool
	peerConns map[string]*grpc.ClientConn
}

// New builds the server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	defaults.Set(&cfg.MaxExecsPerSession, DefaultMaxExecsPerSession)
	defaults.Set(&cfg.MaxExecsPerPrincipal, DefaultMaxExecsPerPrincipal)
	defaults.Set(&cfg.IdleTimeout, DefaultIdleTimeout)
	defaults.Set(&cfg.MaxArtifactBytes, DefaultMaxArtifactBytes)
	s := &Server{cfg: cfg, audit: cfg.Logger.Named("audit"), slots: make(chan struct{}, cfg.MaxStreams), m: newConnectMetrics(cfg.Registry)}
	opts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(rawgrpc.CodecV2{}),
		// Results flow out: a larger write buffer (held only while a
		// connection writes), gRPC's default read buffer.
		grpc.WriteBufferSize(clientWriteBuffer),
		grpc.UnknownServiceHandler(s.handle),
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		grpc.MaxSendMsgSize(cfg.MaxMessageBytes),
		grpc.MaxConcurrentStreams(uint32(min(cfg.MaxStreams, 256))),
		grpc.ConnectionTimeout(10 * time.Second),
		// As Spark Connect's own server: clients may ping idle connections.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: cfg.IdleTimeout, Time: pingEvery, Timeout: pingTimeout}),
	}
	// The peer server: the same limits, no TLS of its own (the peer
	// channel is mutual TLS already) and no idle timeout (a member's
	// connection carries many clients' streams).
	// All of one member's routed streams share its connection, so it may
	// carry as many as the node takes; each is checked for membership.
	s.peerSrv = grpc.NewServer(grpc.ForceServerCodecV2(rawgrpc.CodecV2{}), grpc.Creds(peerCreds{}),
		grpc.WriteBufferSize(ioBuffer),
		grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error { return s.serve(ss, true) }),
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes), grpc.MaxSendMsgSize(cfg.MaxMessageBytes),
		grpc.MaxConcurrentStreams(uint32(cfg.MaxStreams)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: pingEvery, Timeout: pingTimeout, MaxConnectionAge: peerConnAge}))
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	s.srv = grpc.NewServer(opts...)
	return s
}

// Serve accepts connections on ln until Close.
func (s *Server) Serve(ln net.Listener) error {
	return s.serveOn(s.srv, netutil.LimitListener(ln, s.cfg.MaxConns))
}

// serveOn serves srv on ln until Close (nil then).
func (s *Server) serveOn(srv *grpc.Server, ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ln.Close()
	}
	s.mu.Unlock()
	err := srv.Serve(ln)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Close ends every stream and connection, routed ones too. Idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	conns := s.peerConns
	s.peerConns = nil
	s.mu.Unlock()
	s.srv.Stop()
	s.peerSrv.Stop()
	for _, c := range conns {
		_ = c.Close()
	}
}

// planMethods are the calls that read data: the session's shared RDDs'
// views are refreshed before they are forwarded.
var planMethods = map[string]bool{
	"/spark.connect.SparkConnectService/ExecutePlan": true,
	"/spark.connect.SparkConnectService/AnalyzePlan": true,
}

// handle serves one stream of any method from a client.
func (s *Server) handle(_ any, ss grpc.ServerStream) error { return s.serve(ss, false) }

// serve serves one stream; routed: another member sent it over the peer
// channel (routing.go), vouching for its caller.
func (s *Server) serve(ss grpc.ServerStream, routed bool) (err error) {
	began := time.Now()
	method, _ := grpc.MethodFromServerStream(ss)
	who, session, routedTo := "-", "-", "-"
	var st streamStats
	s.m.open.Inc()
	defer func() {
		if r := recover(); r != nil { // a bug must not take the node down
			s.cfg.Logger.Error("spark connect stream panic", "method", method, "panic", r, "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error (logged on node "+s.cfg.NodeID+")")
		}
		s.m.open.Dec()
		in, out, rows := st.in.Load(), st.out.Load(), st.rows.Load()
		if routedTo == "-" {
			s.m.done(method, status.Code(err), time.Since(began), in, out, rows)
		} else {
			// The session's node counts the stream; this one only that
			// it routed one (a sum over nodes counts each stream once).
			s.m.routed.WithLabelValues(status.Code(err).String()).Inc()
		}
		s.audit.Info("connect", "principal", who, "session", session, "method", method,
			"code", status.Code(err).String(), "seconds", time.Since(began).Seconds(),
			"bytes_in", in, "bytes_out", out, "rows", rows, "routed_to", routedTo)
	}()
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		return status.Errorf(codes.ResourceExhausted, "node %s has %d Spark Connect streams open, its limit", s.cfg.NodeID, s.cfg.MaxStreams)
	}
	ctx := ss.Context()
	md, _ := metadata.FromIncomingContext(ctx)
	authn, via := s.authenticate, ""
	if routed {
		if via, err = s.admitRouted(ctx); err != nil {
			return err
		}
		authn = s.vouched
	}
	p, err := authn(ctx, md)
	if err != nil {
		return err
	}
	if p != nil {
		who = p.Name
	}
	refs := md.Get(SessionHeader)
	if len(refs) != 1 || refs[0] == "" {
		return status.Error(codes.InvalidArgument, "name the session: add ;"+SessionHeader+"=ID (an id or a session name) to the sc:// connection string")
	}
	session = refs[0]
	rec, err := s.cfg.Sessions.Lookup(refs[0])
	if err != nil {
		return statusOf(err, refs[0])
	}
	session = fmt.Sprint(rec.ID)
	if s.cfg.Auth != nil && !httpapi.SessionCodeAllowed(p, rec) {
		return status.Errorf(codes.PermissionDenied, "%s may not use session %d over Spark Connect: it needs the code role and modify access to the session", p.Name, rec.ID)
	}
	switch {
	case rec.Status != cluster.SessionActive:
		return status.Errorf(codes.FailedPrecondition, "session %d is %s: %s", rec.ID, rec.Status, rec.Reason)
	case rec.Node != s.cfg.NodeID && (routed || s.cfg.Peers == nil):
		// Routed once already (the registries disagree for a moment), or
		// no peer channel to route on.
		return status.Errorf(codes.FailedPrecondition, "session %d runs on node %s, not on %s: connect to node %s's Spark Connect port (routing between nodes needs peer TLS)",
			rec.ID, rec.Node, s.cfg.NodeID, rec.Node)
	case rec.Node != s.cfg.NodeID:
		routedTo = rec.Node
		return s.route(ctx, ss, method, md, p, rec, &st)
	}
	if executeMethods[method] {
		principal := ""
		if p != nil {
			principal = p.Name
		}
		release, err := s.execs.acquire(rec.ID, principal, s.cfg.MaxExecsPerSession, s.cfg.MaxExecsPerPrincipal)
		if err != nil {
			return err
		}
		defer release()
	}
	b, err := s.cfg.Sessions.Attach(ctx, rec.ID)
	if err != nil {
		return statusOf(err, session)
	}
	if planMethods[method] && b.Refresh != nil {
		rctx, cancel := context.WithTimeout(ctx, refreshTimeout)
		if err := b.Refresh(rctx); err != nil {
			// The plan may not read a shared RDD at all: it runs, on the
			// views as they were.
			s.cfg.Logger.Warn("cannot refresh the shared RDDs' views before a Spark Connect plan", "session", rec.ID, "error", err)
		}
		cancel()
	}
	defer s.open.add(rec.ID, who, methodLabel(method), via, began, &st)()
	var inspect func([]byte) error
	switch {
	case method == configMethod && s.cfg.CheckConf != nil:
		inspect = func(msg []byte) error { return checkConfig(msg, s.cfg.CheckConf) }
	case method == artifactsMethod:
		inspect = (&artifactCheck{max: s.cfg.MaxArtifactBytes}).check
	}
	return proxy(ctx, ss, method, md, b, rec.ID, &st, inspect)
}

// authenticate finds the caller: nil without a users file.
func (s *Server) authenticate(ctx context.Context, md metadata.MD) (*auth.Principal, error) {
	a := s.cfg.Auth
	if a == nil {
		return nil, nil
	}
	h := md.Get("authorization")
	switch {
	case len(h) > 1:
		return nil, status.Error(codes.Unauthenticated, "send one authorization")
	case len(h) == 0:
		if p := certPrincipal(a, ctx); p != nil {
			return p, nil
		}
		return nil, status.Error(codes.Unauthenticated, "this port needs srdd credentials: a bearer token (sc://HOST:PORT/;token=TOKEN) or Basic")
	}
	p, refusal := httpapi.Credentials(a, []byte(h[0]))
	if p == nil {
		return nil, status.Error(codes.Unauthenticated, refusal)
	}
	return p, nil
}

// certPrincipal maps a verified client certificate's CN to its user.
func certPrincipal(a *auth.Authenticator, ctx context.Context) *auth.Principal {
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	ti, ok := pr.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return nil
	}
	p, _ := a.ByName(ti.State.VerifiedChains[0][0].Subject.CommonName)
	return p
}

// statusOf maps the node's session errors to gRPC codes.
func statusOf(err error, ref string) error {
	switch {
	case errors.Is(err, sessions.ErrNotFound):
		return status.Errorf(codes.NotFound, "no session %q", ref)
	case errors.Is(err, sessions.ErrNotReady):
		return status.Errorf(codes.Unavailable, "session %s is still starting; retry", ref)
	case errors.Is(err, sessions.ErrDead), errors.Is(err, sessions.ErrNotLocal):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Errorf(codes.Unavailable, "cannot reach session %s's Spark Connect: %v", ref, err)
}

// forwardKey reports whether a client's metadata key goes on to the
// session's Spark Connect: not its credentials, not srdd's own keys, not
// what gRPC sets itself.
func forwardKey(k string) bool {
	switch {
	case k == "authorization", k == "content-type", k == "user-agent", k == "te",
		strings.HasPrefix(k, ":"), strings.HasPrefix(k, "grpc-"), strings.HasPrefix(k, "x-srdd-"):
		return false
	}
	return true
}

// anyStream is every kind of stream: the proxy forwards both ways until
// either side ends.
var anyStream = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// proxy forwards stream ss to the backend: the client's messages up, the
// backend's messages, headers, trailers and final status down.
// inspect, if set, sees each of the client's messages first; its error
// ends the stream, and that message goes no further.
func proxy(ctx context.Context, ss grpc.ServerStream, method string, in metadata.MD, b *Backend, id int64, st *streamStats, inspect func([]byte) error) error {
	out := metadata.MD{}
	for k, v := range in {
		if forwardKey(k) {
			out[k] = v
		}
	}
	if b.Token != "" {
		out.Set("authorization", "Bearer "+b.Token)
	}
	for k, v := range b.Extra {
		out[k] = v
	}
	cctx, cancel := context.WithCancel(metadata.NewOutgoingContext(ctx, out))
	defer cancel()
	cs, err := b.Conn.NewStream(cctx, anyStream, method, grpc.ForceCodecV2(rawgrpc.CodecV2{}))
	if err != nil {
		return err
	}
	up := make(chan error, 1)
	down := make(chan error, 1)
	go func() { up <- forwardUp(ss, cs, st, inspect) }()
	go func() { down <- forwardDown(cs, ss, st, executeMethods[method]) }()
	for {
		select {
		case err := <-up:
			if err == nil {
				up = nil // the client has sent everything; wait for the answer
				continue
			}
			// The client's side broke (a message over the limit, a reset):
			// end the backend's stream too.
			cancel()
			<-down
			return err
		case err := <-down:
			// forwardUp, if still blocked reading the client, ends when
			// this handler returns.
			return err
		case <-b.Done:
			cancel()
			<-down
			return status.Errorf(codes.FailedPrecondition, "session %d ended (deleted, or its interpreter stopped)", id)
		}
	}
}

// forwardUp copies the client's messages to the backend, then closes the
// backend's send side. nil when the client has sent all it will.
func forwardUp(ss grpc.ServerStream, cs grpc.ClientStream, st *streamStats, inspect func([]byte) error) error {
	for {
		var f rawgrpc.Frame
		if err := ss.RecvMsg(&f); err != nil {
			if errors.Is(err, io.EOF) {
				return cs.CloseSend()
			}
			return err
		}
		st.in.Add(int64(len(f)))
		if inspect != nil {
			if err := inspect(f); err != nil {
				return err
			}
		}
		if err := cs.SendMsg(&f); err != nil {
			if errors.Is(err, io.EOF) {
				return nil // the backend ended the stream: RecvMsg there says how
			}
			return err
		}
	}
}

// forwardDown copies the backend's headers and messages to the client,
// then its trailer; it answers the backend's final status (nil for OK).
// results: the messages are ExecutePlanResponses, whose Arrow batches'
// rows are counted.
func forwardDown(cs grpc.ClientStream, ss grpc.ServerStream, st *streamStats, results bool) error {
	headerSent := false
	for {
		var f rawgrpc.Frame
		err := cs.RecvMsg(&f)
		if err != nil {
			if !headerSent {
				if h, herr := cs.Header(); herr == nil && len(h) > 0 {
					_ = ss.SetHeader(h)
				}
			}
			ss.SetTrailer(cs.Trailer())
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if !headerSent {
			h, herr := cs.Header()
			if herr != nil {
				return herr
			}
			if err := ss.SendHeader(h); err != nil {
				return err
			}
			headerSent = true
		}
		if err := ss.SendMsg(&f); err != nil {
			return err
		}
		st.out.Add(int64(len(f)))
		if results {
			st.rows.Add(arrowRows(f))
		}
	}
}

// streamStats is what one stream carried: message bytes each way, and
// result rows.
type streamStats struct{ in, out, rows atomic.Int64 }
