// Package httpapi is srdd's fasthttp front end: the shared-RDD API under
// /v1, Livy's /sessions API, /metrics and /healthz.
package httpapi

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/srdd/srdd/auth"
	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/defaults"
	"github.com/srdd/srdd/metrics"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// MaxRequestBytes bounds a request body (README, "Limits").
const MaxRequestBytes = 4 << 20

// Config wires the server to the layers below.
type Config struct {
	Store    KV
	Sessions Sessions
	Batches  Batches // Livy batches; nil: /batches answers 404
	Cluster  Cluster
	Registry *prometheus.Registry // metrics of every package are gathered from it
	Logger   hclog.Logger
	// CSRFProtection requires an X-Requested-By header on every mutating
	// request, as Livy's livy.server.csrf-protection.enabled does.
	CSRFProtection bool
	Version        string // srdd's version, shown by GET /version
	// ClusterKey, if set, is required (X-Srdd-Cluster-Key) on the routes
	// that change or feed the registry directly: /internal/*, joins and
	// removals of nodes.
	ClusterKey string
	// PlaintextCluster lets other nodes join without peer TLS (--insecure);
	// off, a join without peer TLS is refused (403 plaintext_cluster).
	PlaintextCluster bool
	// RDDLabels bounds the rdd label of per-RDD metrics; nil: the default.
	RDDLabels *metrics.RDDLabels
	// Ready says whether the node can take a write now, and if not, what
	// it waits for (GET /readyz). Nil: ready once the registry knows a
	// leader.
	Ready func() (bool, []string)
	// LoopbackOnly says the node listens on loopback only: the Host
	// header must then name loopback (stops DNS rebinding).
	LoopbackOnly bool
	// AllowedHosts, if set (--allowed-hosts), are the only Host names the
	// node answers (lower case, no port), on any bind: it stops DNS
	// rebinding on a node that serves beyond loopback.
	AllowedHosts []string
	// ReadTimeout bounds the arrival of a whole request, body included
	// (0: DefaultReadTimeout); MaxConns caps open connections (0:
	// DefaultMaxConns).
	ReadTimeout time.Duration
	MaxConns    int
	// PeerTLS, if set, is used to call other nodes over https.
	PeerTLS *tls.Config
	// Peers, if set, means node-to-node traffic runs over the peer
	// channel (mutual TLS on the Raft port; docs/ARCHITECTURE.md, "Peer
	// trust"): forwarding dials it, ServePeer serves it, and this port
	// refuses the internal routes and joins.
	Peers Peers
	// Auth, if set, authenticates every request and applies the
	// rule of each route (routes.go, auth.go). Nil: every call is allowed.
	Auth *auth.Authenticator
	// Connect, if set, is the node's Spark Connect port: its open streams
	// (GET /sessions/{id}/spark-connect). Nil: the node serves none.
	Connect ConnectStreams
}

// Server is the HTTP front end of one node.
type Server struct {
	cfg     Config
	audit   hclog.Logger
	metrics *httpMetrics
	promH   fasthttp.RequestHandler
	srv     *fasthttp.Server
	peerSrv *fasthttp.Server
	fwd     forwarder
	router  *pathNode // the route table's tree (router.go)

	base       context.Context // cancelled by Close; parent of request contexts
	cancelBase context.CancelFunc

	closeOnce sync.Once

	openapi struct { // GET /openapi.json, built on first use
		once sync.Once
		body []byte
		err  error
	}
}

// New builds the server and registers its metrics.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Ready == nil {
		cfg.Ready = func() (bool, []string) {
			if !cfg.Cluster.HasLeader() {
				return false, []string{"leader"}
			}
			return true, nil
		}
	}
	s := &Server{cfg: cfg, audit: cfg.Logger.Named("audit"), metrics: newHTTPMetrics(cfg.Registry, cfg.RDDLabels), fwd: forwarder{tls: cfg.PeerTLS, peers: cfg.Peers}}
	s.router = newRouter(&s.cfg)
	s.base, s.cancelBase = context.WithCancel(context.Background())
	s.promH = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}))
	readTimeout, maxConns := cfg.ReadTimeout, cfg.MaxConns
	defaults.Set(&readTimeout, DefaultReadTimeout)
	defaults.Set(&maxConns, DefaultMaxConns)
	s.srv = &fasthttp.Server{
		Handler: s.handle,
		Name:    "srdd",
		// Slow clients (issue 25): before authentication fasthttp reads a
		// body up to preAuthBodyBytes only (a longer one streams, and
		// readBody reads the rest once the caller is known); the whole request
		// must arrive within readTimeout; past maxConns open connections
		// a new one gets a fast 503.
		StreamRequestBody:  true,
		MaxRequestBodySize: MaxRequestBytes,
		ReadTimeout:        readTimeout,
		IdleTimeout:        2 * time.Minute,
		Concurrency:        maxConns,
		ErrorHandler:       s.transportError,
		Logger:             fasthttpLogger{cfg.Logger.Named("http")},
	}
	s.peerSrv = &fasthttp.Server{
		Handler:            s.handlePeer,
		Name:               "srdd",
		MaxRequestBodySize: MaxRequestBytes,
		ReadTimeout:        5 * time.Minute,
		IdleTimeout:        2 * time.Minute,
		ErrorHandler:       s.transportError,
		Logger:             fasthttpLogger{cfg.Logger.Named("peer-http")},
	}
	return s
}

// Slow clients (issue 25).
const (
	// preAuthBodyBytes is how much of a body the server reads before it
	// knows the caller (fasthttp's pre-read of a streamed body); the rest
	// waits for readBody.
	preAuthBodyBytes = 8 << 10
	// DefaultReadTimeout bounds the arrival of a whole request, body
	// included (--read-timeout).
	DefaultReadTimeout = 10 * time.Second
	// DefaultMaxConns caps the API's open connections (--max-conns).
	DefaultMaxConns = 4096
)

// readBody reads the rest of a request's body once the caller is
// authenticated (fasthttp streams bodies over preAuthBodyBytes). A body
// over MaxRequestBytes is 413 before it is read; one that does not
// arrive within the read timeout is 408. Either closes the connection.
func (s *Server) readBody(ctx *fasthttp.RequestCtx) bool {
	if !ctx.Request.IsBodyStream() {
		return true
	}
	cl := ctx.Request.Header.ContentLength()
	switch {
	case cl == 0:
		_ = ctx.Request.CloseBodyStream()
		return true
	case cl > MaxRequestBytes:
		ctx.SetConnectionClose()
		writeError(ctx, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body exceeds the limit of %d bytes", MaxRequestBytes))
		return false
	case cl > 0 && cl <= preAuthBodyBytes:
		_ = ctx.PostBody() // read whole before the handler: no I/O here
		return true
	}
	b, err := io.ReadAll(io.LimitReader(ctx.RequestBodyStream(), MaxRequestBytes+1))
	_ = ctx.Request.CloseBodyStream()
	switch {
	case err != nil:
		ctx.SetConnectionClose()
		writeError(ctx, http.StatusRequestTimeout, "request_timeout", "the request body did not arrive in time (--read-timeout)")
		return false
	case len(b) > MaxRequestBytes:
		ctx.SetConnectionClose()
		writeError(ctx, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body exceeds the limit of %d bytes", MaxRequestBytes))
		return false
	}
	ctx.Request.SetBodyRaw(b)
	return true
}

// Serve serves on ln until Close.
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(ln) }

// Close stops accepting and waits for in-flight requests. Idempotent.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.cancelBase() // ends long-polls and waits in flight
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = s.srv.ShutdownWithContext(ctx)
		_ = s.peerSrv.ShutdownWithContext(ctx)
	})
	return err
}

// transportError answers requests fasthttp could not parse, in our format.
func (s *Server) transportError(ctx *fasthttp.RequestCtx, err error) {
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		writeError(ctx, http.StatusRequestEntityTooLarge, "too_large",
			fmt.Sprintf("request body exceeds the limit of %d bytes", MaxRequestBytes))
		return
	}
	// fasthttp's messages quote the raw request (headers included): they
	// go to the log, never back to the client.
	s.cfg.Logger.Named("http").Debug("cannot parse request", "remote", ctx.RemoteAddr().String(), "error", err)
	var small *fasthttp.ErrSmallBuffer
	if errors.As(err, &small) {
		writeError(ctx, http.StatusRequestHeaderFieldsTooLarge, "headers_too_large", "request headers are too large")
		return
	}
	writeError(ctx, http.StatusBadRequest, "bad_http", "cannot parse the request as HTTP/1.1")
}

type fasthttpLogger struct{ l hclog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) { f.l.Debug(fmt.Sprintf(format, args...)) }

// handle routes one request and records its latency.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	began := time.Now()
	inFlight := s.metrics.inFlight[apiOf(ctx.Path())]
	inFlight.Inc()
	route := routeOther
	defer func() {
		// A bug must not take the node (and every session on it) down.
		if r := recover(); r != nil {
			s.cfg.Logger.Error("handler panic", "path", string(ctx.Path()), "panic", r, "stack", string(debug.Stack()))
			ctx.Response.Reset()
			writeError(ctx, http.StatusInternalServerError, "internal", "internal error (logged on node "+s.cfg.Cluster.ID()+")")
		}
		inFlight.Dec()
		s.metrics.observe(ctx, route, ctx.Response.StatusCode(), time.Since(began).Seconds())
		s.auditLog(ctx, route)
	}()
	ctx.SetUserValue(baseKey, s.base)
	ctx.SetUserValue(loggerKey, s.cfg.Logger)
	route = s.route(ctx)
	if ctx.Request.IsBodyStream() && ctx.Request.Header.ContentLength() != 0 {
		// Refused before its body was read: the rest of it must not be
		// parsed as the next request, nor held open.
		ctx.SetConnectionClose()
	}
}

// segments splits the undecoded path, then decodes each segment, so that
// a key may contain an encoded '/' (%2F) or "..".
func segments(ctx *fasthttp.RequestCtx) ([]string, bool) {
	raw := string(ctx.URI().PathOriginal())
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw = raw[:i]
	}
	raw = strings.TrimPrefix(raw, "/")
	if raw == "" {
		return nil, true
	}
	parts := strings.Split(strings.TrimSuffix(raw, "/"), "/")
	for i, p := range parts {
		d, err := url.PathUnescape(p)
		if err != nil {
			return nil, false
		}
		parts[i] = d
	}
	return parts, true
}

func (s *Server) route(ctx *fasthttp.RequestCtx) string {
	if !s.hostAllowed(ctx) {
		msg := "this node listens on loopback only and answers requests for localhost, 127.0.0.1 or [::1] only"
		if len(s.cfg.AllowedHosts) > 0 {
			msg = "this node answers requests for its --allowed-hosts only: " + strings.Join(s.cfg.AllowedHosts, ", ")
		}
		writeError(ctx, http.StatusForbidden, "forbidden_host", msg)
		return routeOther
	}
	if !mediaTypeOK(ctx) {
		unsupportedMediaType(ctx)
		return routeOther
	}
	if s.cfg.CSRFProtection && !ctx.IsGet() && !ctx.IsHead() && !ctx.IsOptions() &&
		len(ctx.Request.Header.Peek("X-Requested-By")) == 0 &&
		!bytes.HasPrefix(ctx.URI().PathOriginal(), []byte("/internal/")) {
		badRequest(ctx, "Missing Required Header for CSRF protection: X-Requested-By")
		return routeOther
	}
	seg, ok := segments(ctx)
	if !ok {
		badRequest(ctx, "malformed percent-encoding in path")
		return routeOther
	}
	m := string(ctx.Method())
	mt := s.router.match(seg)
	if !s.peerGate(ctx, mt, m, seg) {
		return routeOther
	}
	// The cluster key is how nodes know each other in development mode
	// (no peer TLS); with peer TLS only the peer channel is a peer.
	keyOK := s.cfg.ClusterKey != "" && subtle.ConstantTimeCompare(ctx.Request.Header.Peek(cluster.KeyHeader), []byte(s.cfg.ClusterKey)) == 1
	if keyOK && s.cfg.Peers == nil {
		ctx.SetUserValue(peerKey, true)
	}
	if peerID(ctx) == "" && s.cfg.ClusterKey != "" && mt.nodeOnly(m, seg) && !keyOK {
		writeError(ctx, http.StatusForbidden, "forbidden", "this call needs the cluster key ("+cluster.KeyHeader+")")
		return routeOther
	}
	if !s.internalHeaders(ctx, seg) {
		return routeOther
	}
	if !s.authenticate(ctx, mt.mayBeAnonymous(m, seg)) {
		return routeOther
	}
	if !s.readBody(ctx) {
		return routeOther
	}
	ctx.SetUserValue(segKey, seg)
	// A session's capability is good only for that session's own RDDs
	// on this node: refused here, before any forwarding.
	if p := principalOf(ctx); p != nil && p.Capability && !s.capabilityOwns(p, mt.rdd) {
		forbidden(ctx, capabilityRefusal)
		return routeOther
	}
	t := s.ownerOf(ctx, mt, m, seg)
	if t.placement != nil && s.placeRemotely(ctx, t.placement) {
		return routeForwarded
	}
	if t.node != "" {
		s.forward(ctx, t.node, t.what)
		return routeForwarded
	}
	return s.dispatch(ctx, mt, m, seg)
}

// health is liveness: the process serves HTTP. It says nothing about
// whether the node can take a write (that is ready).
func (s *Server) health(ctx *fasthttp.RequestCtx) {
	out := map[string]any{"status": "ok", "node": s.cfg.Cluster.ID()}
	if s.cfg.Peers != nil {
		// Where a joiner sends its join (over mutual TLS): --join names
		// this node's HTTP address, which may need credentials for
		// anything but this route.
		out["peer_addr"] = s.cfg.Peers.RaftAddr()
	}
	writeJSON(ctx, http.StatusOK, out)
}

// ready is readiness (docs/ARCHITECTURE.md invariant 11): 200 only when
// the node can take a write; otherwise 503 with what it waits for.
func (s *Server) ready(ctx *fasthttp.RequestCtx) {
	ok, waiting := s.cfg.Ready()
	if ok {
		writeJSON(ctx, http.StatusOK, map[string]any{"status": "ready", "node": s.cfg.Cluster.ID()})
		return
	}
	ctx.Response.Header.Set("Retry-After", "1")
	writeJSON(ctx, http.StatusServiceUnavailable, map[string]any{
		"status": "not_ready", "node": s.cfg.Cluster.ID(), "waiting_for": waiting,
	})
}

// LivyAPIVersion is the Livy REST API version srdd is compatible with.
// Clients such as the livy Python package read it from GET /version.
const LivyAPIVersion = "0.8.0"

func (s *Server) version(ctx *fasthttp.RequestCtx) {
	writeJSON(ctx, http.StatusOK, map[string]string{"version": LivyAPIVersion, "srdd": s.cfg.Version})
}

// baseKey is the user value under which handle stores the server's base
// context (cancelled by Close) for reqContext.
const baseKey = "srdd.base"

// reqContext bounds work done for one request. It derives from the
// server's base context, which Close cancels first, so no long-poll or
// wait for a starting session holds up a shutdown. (RequestCtx's own Done
// races with fasthttp's Shutdown, so it is not used.)
func reqContext(ctx *fasthttp.RequestCtx) (context.Context, context.CancelFunc) {
	base, ok := ctx.UserValue(baseKey).(context.Context)
	if !ok {
		base = context.Background()
	}
	return context.WithTimeout(base, 5*time.Minute)
}
