package httpapi

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/peerid"
	"github.com/srdd/srdd/kvstore"
	"github.com/valyala/fasthttp"
)

// Headers between nodes.
const (
	hopHeader    = "X-Srdd-Hops"   // how many nodes forwarded this request
	placedHeader = "X-Srdd-Placed" // placement already chose this node
	maxHops      = 2
	// proxyTimeout bounds a forwarded call: above the longest long-poll.
	proxyTimeout = 6 * time.Minute
	// placeDialTimeout bounds the dial to a node placement chose; past it
	// the next candidate is tried (a dead machine does not refuse, it is
	// silent).
	placeDialTimeout = 500 * time.Millisecond
)

// Cluster is what the API needs from the registry node.
type Cluster interface {
	ID() string
	IsLeader() bool
	ClusterStatus() cluster.Status
	ServeApply(entry []byte) []byte
	Join(id, raftAddr, httpAddr string, voter, hasState bool) error
	Admit(id string, voter bool, by string) error
	Remove(id string) error
	LeaderHTTP() (string, error)
	HasLeader() bool
	Placement() []string
	ServeSilent() ([]byte, error)
	VerifyLeader() error
	CatchUp() error
	ServeIndex() ([]byte, error)
	Member(id string) (cluster.Member, bool)
	RDD(name string) (cluster.RDD, bool)
	Session(id int64) (cluster.Session, bool)
	SessionByName(name string) (cluster.Session, bool)
	Batch(id int64) (cluster.Batch, bool)
}

// forwarder proxies requests to other nodes over pooled connections.
type forwarder struct {
	tls     *tls.Config // nil: peers serve plain http
	peers   Peers       // set: calls go over the peer channel, by node ID
	mu      sync.Mutex
	clients map[string]*fasthttp.HostClient
}

// scheme is the URL scheme of peers.
func (f *forwarder) scheme() string {
	if f.peers != nil {
		return "http" // TLS is below, in the peer channel
	}
	if f.tls != nil {
		return "https"
	}
	return "http"
}

// client is the pooled client for node id at HTTP address addr: over
// the peer channel to id with peer TLS, else to addr.
func (f *forwarder) client(id, addr string) *fasthttp.HostClient {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.clients == nil {
		f.clients = map[string]*fasthttp.HostClient{}
	}
	if f.peers != nil {
		c, ok := f.clients["peer/"+id]
		if !ok {
			c = &fasthttp.HostClient{
				Addr: addr, MaxConns: 512, MaxIdleConnDuration: time.Minute,
				ReadTimeout: proxyTimeout, WriteTimeout: time.Minute,
				DisablePathNormalizing: true, // the owner routes the path the client sent
				Dial:                   func(string) (net.Conn, error) { return f.peers.DialPeer(id, 10*time.Second) },
				RetryIfErr:             retryForward,
			}
			f.clients["peer/"+id] = c
		}
		return c
	}
	c, ok := f.clients[addr]
	if !ok {
		c = &fasthttp.HostClient{
			Addr: addr, MaxConns: 512, MaxIdleConnDuration: time.Minute,
			ReadTimeout: proxyTimeout, WriteTimeout: time.Minute,
			// Sent as the client sent it: a normalised path turned a key
			// with an encoded slash or dot segment into another route.
			DisablePathNormalizing: true,
			Dial:                   dialChecked, RetryIfErr: retryForward,
			IsTLS: f.tls != nil, TLSConfig: f.tls,
		}
		f.clients[addr] = c
	}
	return c
}

// internalHeaders drops the forwarding headers (X-Srdd-Hops,
// X-Srdd-Placed, X-Srdd-Principal) from every request but a member's:
// only a member may say how often a request was forwarded, that
// placement chose this node, or whom it authenticated. A member's
// principal counts only on the client routes it forwards, never on the
// internal routes or a join (docs/ARCHITECTURE.md, "Peer trust"). A
// peer's hop count must be a number >= 0; otherwise it answers 400 and
// reports false.
func (s *Server) internalHeaders(ctx *fasthttp.RequestCtx, seg []string) bool {
	if !s.fromMember(ctx) {
		ctx.Request.Header.Del(hopHeader)
		ctx.Request.Header.Del(placedHeader)
		ctx.Request.Header.Del(principalHeader)
		return true
	}
	if (len(seg) > 0 && seg[0] == "internal") || isJoin(seg) {
		ctx.Request.Header.Del(principalHeader)
	}
	if h := ctx.Request.Header.Peek(hopHeader); len(h) > 0 {
		if n, err := strconv.Atoi(string(h)); err != nil || n < 0 {
			badRequest(ctx, hopHeader+" must be a whole number >= 0")
			return false
		}
	}
	return true
}

// forward sends this request to node id and copies its answer back, so the
// client sees the owner's own status and body (its 404, not a proxy 502).
// what names the thing the node owns, for the error if it cannot be reached.
func (s *Server) forward(ctx *fasthttp.RequestCtx, id, what string) {
	hops, _ := strconv.Atoi(string(ctx.Request.Header.Peek(hopHeader)))
	if hops >= maxHops {
		writeError(ctx, http.StatusLoopDetected, "forward_loop",
			fmt.Sprintf("request forwarded %d times without reaching %s; the registry may be changing", hops, what))
		return
	}
	m, ok := s.cfg.Cluster.Member(id)
	if !ok || m.HTTPAddr == "" {
		writeError(ctx, http.StatusServiceUnavailable, "owner_unavailable", fmt.Sprintf("%s is on node %s, whose address is unknown", what, id))
		return
	}
	if m.Status == cluster.NodeDown || m.Status == cluster.NodeRemoved {
		ctx.Response.Header.Set("Retry-After", "5")
		writeError(ctx, http.StatusServiceUnavailable, "owner_unavailable", fmt.Sprintf("%s is on node %s (%s), which is %s", what, id, m.HTTPAddr, m.Status))
		return
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	ctx.Request.CopyTo(req)
	req.URI().SetScheme(s.fwd.scheme())
	req.SetHost(m.HTTPAddr)
	req.Header.Set(hopHeader, strconv.Itoa(hops+1))
	s.vouch(ctx, req)
	// The call runs on its own goroutine, which owns req and resp and
	// releases them when it ends, so that a call to a node that stops
	// answering (SIGSTOP keeps its connections open) is cut when the
	// leader marks that node down instead of waiting out proxyTimeout.
	// Calls in flight are bounded by the client's MaxConns per node.
	done := make(chan error, 1)
	var handoff sync.Mutex // held by whoever may still touch resp
	handoff.Lock()
	go func() {
		err := s.fwd.client(id, m.HTTPAddr).DoTimeout(req, resp, proxyTimeout)
		done <- err
		handoff.Lock() // the handler copied resp, or gave up on it
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}()
	err, down := s.awaitForward(done, id)
	if err == nil && !down {
		resp.CopyTo(&ctx.Response)
	}
	handoff.Unlock()
	readOnly := ctx.IsGet() || ctx.IsHead()
	switch {
	case down && !readOnly:
		// The call reached the owner, which may still apply it: not a
		// refusal, so no Retry-After (a client must not just resend it).
		ctx.Response.Reset()
		writeError(ctx, http.StatusServiceUnavailable, "outcome_unknown",
			fmt.Sprintf("%s is on node %s (%s), which was marked down while this request waited for it; the request may still take effect there", what, id, m.HTTPAddr))
	case down:
		ctx.Response.Reset()
		ctx.Response.Header.Set("Retry-After", "5")
		writeError(ctx, http.StatusServiceUnavailable, "owner_unavailable",
			fmt.Sprintf("%s is on node %s (%s), which was marked down while this request waited for it", what, id, m.HTTPAddr))
	case err != nil && !readOnly && !neverSent(err):
		// Sent (or maybe sent) and then cut: a timeout, a reset. The
		// owner may have logged the write; it is no refusal.
		ctx.Response.Reset()
		writeError(ctx, http.StatusServiceUnavailable, "outcome_unknown",
			fmt.Sprintf("%s is on node %s (%s), which did not answer; the request may still take effect there: %v", what, id, m.HTTPAddr, err))
	case err != nil:
		ctx.Response.Reset()
		ctx.Response.Header.Set("Retry-After", "5")
		writeError(ctx, http.StatusServiceUnavailable, "owner_unavailable",
			fmt.Sprintf("%s is on node %s (%s), which did not answer: %v", what, id, m.HTTPAddr, err))
	}
}

// neverSent reports whether a forward failed before the request could
// reach the owner: no connection was made (refused, unreachable). Only
// then is a write's 503 owner_unavailable a refusal a client may retry
// blindly.
func neverSent(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return (errors.As(err, &op) && op.Op == "dial") || errors.As(err, &dns) ||
		errors.Is(err, fasthttp.ErrDialTimeout) || errors.Is(err, fasthttp.ErrNoFreeConns)
}

// Forwarded calls that take long look at the target's membership: the
// first look after forwardWatchAfter, then every forwardWatchEvery.
const (
	forwardWatchAfter = time.Second
	forwardWatchEvery = 250 * time.Millisecond
)

// awaitForward waits for a forwarded call's result on done, or until
// node id is marked down or removed (down), or the server shuts down.
func (s *Server) awaitForward(done <-chan error, id string) (err error, down bool) {
	t := time.NewTimer(forwardWatchAfter)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			return err, false
		case <-s.base.Done():
			return errors.New("this node is shutting down"), false
		case <-t.C:
			select {
			case err := <-done: // an answer that came with the tick wins
				return err, false
			default:
			}
			if m, ok := s.cfg.Cluster.Member(id); !ok || m.Status == cluster.NodeDown || m.Status == cluster.NodeRemoved {
				return nil, true
			}
			t.Reset(forwardWatchEvery)
		}
	}
}

// target is where a request must be served: node ("" for this node) and
// what it owns there (for error messages), or, for a creation, the
// placement candidates in order.
type target struct {
	node, what string
	placement  []string
}

// placedHere reports whether this request must be served by this node
// whoever owns what it names: placement already chose this node
// (X-Srdd-Placed, which only peers may send: internalHeaders strips a
// client's), or a read asks for this node's own view (scope=local, which
// never skips the placement of a creation).
func placedHere(ctx *fasthttp.RequestCtx) bool {
	return len(ctx.Request.Header.Peek(placedHeader)) > 0 ||
		((ctx.IsGet() || ctx.IsHead()) && scopeLocal(ctx))
}

// sessionNode is the node that runs session id, if it is another one and
// the session is active there; sessions that are no longer active are
// answered here ("lost").
func (s *Server) sessionNode(id int64) target {
	if rec, ok := s.cfg.Cluster.Session(id); ok && rec.Node != s.cfg.Cluster.ID() && rec.Status == cluster.SessionActive {
		return target{node: rec.Node, what: fmt.Sprintf("session %d", id)}
	}
	return target{}
}

// resolveSession finds the session named by ref (an id or a name),
// catching up with the leader before it says there is none (it may have
// been created through another node a moment ago).
func (s *Server) resolveSession(ref string) (int64, error) {
	id, err := s.cfg.Sessions.Resolve(ref)
	if err == nil {
		if _, ok := s.cfg.Cluster.Session(id); ok {
			return id, nil
		}
	}
	if cerr := s.cfg.Cluster.CatchUp(); cerr == nil {
		return s.cfg.Sessions.Resolve(ref)
	}
	return id, err
}

// rddOwner sends a request about /v1/rdds/{name} to the node whose
// session holds the RDD. A name this node does not know may have been
// created through another node a moment ago: it catches up with the
// leader before the handler answers 404.
func (s *Server) rddOwner(ctx *fasthttp.RequestCtx, seg []string) target {
	name := seg[2]
	r, ok := s.cfg.Cluster.RDD(name)
	if !ok && s.cfg.Cluster.CatchUp() == nil {
		r, ok = s.cfg.Cluster.RDD(name)
	}
	if !ok {
		return target{}
	}
	if ctx.IsGet() && len(seg) > 3 && seg[3] == "keys" && copyMayServe(ctx) && s.cfg.Store.ServesCopy(name) {
		// A stale or linearizable read of keys, and this node holds a
		// copy: served here (kvstore's read gate holds it to its level).
		return target{}
	}
	t := s.sessionNode(r.SessionID)
	t.what = fmt.Sprintf("shared rdd %q", name)
	return t
}

// copyMayServe says whether a read's consistency level lets a copy serve
// it: stale (what the copy holds) and linearizable (a read index) do.
// A default read goes to the owner: it shows what the owner has
// acknowledged, and a copy, which may apply a write before the owner
// acknowledges it, would show it sooner, so a default read through the
// owner just after could see the older value (porcupine found it).
func copyMayServe(ctx *fasthttp.RequestCtx) bool {
	switch string(ctx.QueryArgs().Peek("consistency")) {
	case kvstore.ConsistencyStale, kvstore.ConsistencyLinearizable:
		return true
	}
	return false
}

// sessionOwner sends a request about /sessions/{id} to the session's node.
func (s *Server) sessionOwner(_ *fasthttp.RequestCtx, seg []string) target {
	if id, err := s.resolveSession(seg[1]); err == nil {
		return s.sessionNode(id)
	}
	return target{}
}

// placeRDD places POST /v1/rdds: in the session the body names, on that
// session's node, or, with no session named, on the first placement
// candidate.
func (s *Server) placeRDD(ctx *fasthttp.RequestCtx, _ []string) target {
	if !ctx.IsPost() || placedHere(ctx) {
		return target{}
	}
	var req struct {
		Session sessionRef `json:"session"`
	}
	_ = json.Unmarshal(ctx.PostBody(), &req)
	if req.Session != "" {
		if id, err := s.resolveSession(string(req.Session)); err == nil {
			return s.sessionNode(id)
		}
		return target{}
	}
	return target{placement: s.cfg.Cluster.Placement()}
}

// placeCreation places POST /sessions and POST /batches on the first
// placement candidate.
func (s *Server) placeCreation(ctx *fasthttp.RequestCtx, _ []string) target {
	if !ctx.IsPost() || placedHere(ctx) {
		return target{}
	}
	return target{placement: s.cfg.Cluster.Placement()}
}

// placeRemotely sends a creation to the first placement candidate that
// answers and reports true, or reports false when this node comes first
// or no other candidate can be reached (this node, being alive, takes
// it). A candidate that cannot be dialled never saw the request, so the
// next one is tried without the client retrying; one that was reached
// answers for itself (docs/ARCHITECTURE.md invariant 11).
func (s *Server) placeRemotely(ctx *fasthttp.RequestCtx, candidates []string) bool {
	self := s.cfg.Cluster.ID()
	hops, _ := strconv.Atoi(string(ctx.Request.Header.Peek(hopHeader)))
	if hops >= maxHops {
		return false
	}
	for _, id := range candidates {
		if id == self {
			return false
		}
		m, ok := s.cfg.Cluster.Member(id)
		if !ok || m.HTTPAddr == "" || m.Status != cluster.NodeUp {
			continue
		}
		req := fasthttp.AcquireRequest()
		ctx.Request.CopyTo(req)
		req.URI().SetScheme(s.fwd.scheme())
		req.SetHost(m.HTTPAddr)
		req.Header.Set(hopHeader, strconv.Itoa(hops+1))
		req.Header.Set(placedHeader, "1")
		s.vouch(ctx, req)
		delivered, err := s.fwd.sendOnce(id, m.HTTPAddr, req, &ctx.Response)
		fasthttp.ReleaseRequest(req)
		if err == nil {
			return true
		}
		if !delivered {
			s.cfg.Logger.Warn("placement candidate cannot be dialled; trying the next", "node", id, "addr", m.HTTPAddr, "error", err)
			continue
		}
		// It may have been created there: never send it twice.
		ctx.Response.Reset()
		ctx.Response.Header.Set("Retry-After", "1")
		writeError(ctx, http.StatusServiceUnavailable, "outcome_unknown",
			fmt.Sprintf("node %s (%s) took the request but did not answer; it may or may not have been created", id, m.HTTPAddr))
		return true
	}
	return false
}

// sendOnce sends req over a new connection and reads the answer into
// resp. delivered is false when the connection could not be made, so the
// request certainly did not arrive. A pooled connection is not used: one
// to a node that just died fails only after the request is written.
func (f *forwarder) sendOnce(id, addr string, req *fasthttp.Request, resp *fasthttp.Response) (delivered bool, err error) {
	var conn net.Conn
	if f.peers != nil {
		// The TLS handshake is part of the dial: a peer that cannot
		// complete it never saw the request.
		conn, err = f.peers.DialPeer(id, 2*placeDialTimeout)
	} else {
		conn, err = net.DialTimeout("tcp", addr, placeDialTimeout)
	}
	if err != nil {
		return false, fmt.Errorf("cannot dial %s: %w", addr, err)
	}
	if tlsCfg := f.tls; tlsCfg != nil && f.peers == nil {
		c := tlsCfg.Clone()
		if host, _, err := net.SplitHostPort(addr); err == nil && c.ServerName == "" {
			c.ServerName = host
		}
		conn = tls.Client(conn, c)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(proxyTimeout))
	bw := bufio.NewWriter(conn)
	if err := req.Write(bw); err != nil {
		return true, err
	}
	if err := bw.Flush(); err != nil {
		return true, err
	}
	if err := resp.Read(bufio.NewReader(conn)); err != nil {
		return true, err
	}
	return true, nil
}

// toLeader forwards a request that only the leader can serve.
func (s *Server) toLeader(ctx *fasthttp.RequestCtx) {
	hops, _ := strconv.Atoi(string(ctx.Request.Header.Peek(hopHeader)))
	addr, err := s.cfg.Cluster.LeaderHTTP()
	leader := ""
	if s.cfg.Peers != nil && err == nil {
		leader, err = s.cfg.Peers.LeaderID()
	}
	if err != nil || hops >= maxHops {
		ctx.Response.Header.Set("Retry-After", "1")
		writeError(ctx, http.StatusServiceUnavailable, "no_leader", "the cluster has no reachable leader right now")
		return
	}
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	ctx.Request.CopyTo(req)
	req.URI().SetScheme(s.fwd.scheme())
	req.SetHost(addr)
	req.Header.Set(hopHeader, strconv.Itoa(hops+1))
	s.vouch(ctx, req)
	if err := s.fwd.client(leader, addr).DoTimeout(req, &ctx.Response, time.Minute); err != nil {
		ctx.Response.Reset()
		writeError(ctx, http.StatusServiceUnavailable, "no_leader", "the leader at "+addr+" did not answer: "+err.Error())
	}
}

// internalApply applies a command forwarded by a follower (cluster.ApplyPath).
func (s *Server) internalApply(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.SetContentType("application/msgpack")
	ctx.SetBody(s.cfg.Cluster.ServeApply(ctx.PostBody()))
}

func (s *Server) clusterStatus(ctx *fasthttp.RequestCtx) {
	if string(ctx.QueryArgs().Peek("consistency")) == "strong" {
		if !s.cfg.Cluster.IsLeader() {
			s.toLeader(ctx)
			return
		}
		if err := s.cfg.Cluster.VerifyLeader(); err != nil {
			fail(ctx, err)
			return
		}
	}
	writeJSON(ctx, http.StatusOK, s.cfg.Cluster.ClusterStatus())
}

func (s *Server) clusterJoin(ctx *fasthttp.RequestCtx) {
	var req struct {
		ID       string `json:"id"`
		RaftAddr string `json:"raft_addr"`
		HTTPAddr string `json:"http_addr"`
		Voter    *bool  `json:"voter"`
		HasState bool   `json:"has_state"`
	}
	if !decodeBody(ctx, &req) {
		return
	}
	if req.ID == "" || req.RaftAddr == "" || req.HTTPAddr == "" {
		badRequest(ctx, "join needs id, raft_addr and http_addr")
		return
	}
	if s.cfg.Peers == nil && !s.cfg.PlaintextCluster {
		fail(ctx, fmt.Errorf("%w: this node runs without peer TLS, so nothing proves %q is a node; start the nodes with --peer-cert, --peer-key and --peer-ca, or all with --insecure on a network you trust",
			cluster.ErrPlaintextCluster, req.ID))
		return
	}
	if !s.joinAllowed(ctx, req.ID) {
		return
	}
	if !s.cfg.Cluster.IsLeader() {
		s.toLeader(ctx)
		return
	}
	voter := req.Voter == nil || *req.Voter
	if err := s.cfg.Cluster.Join(req.ID, req.RaftAddr, req.HTTPAddr, voter, req.HasState); err != nil {
		if errors.Is(err, cluster.ErrNotLeader) {
			s.toLeader(ctx)
			return
		}
		fail(ctx, err)
		return
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"joined": req.ID, "voter": voter})
}

// clusterAdmit records that a node ID may join once (any member may
// propose it; the leader decides the join).
func (s *Server) clusterAdmit(ctx *fasthttp.RequestCtx) {
	var req struct {
		ID    string `json:"id"`
		Voter bool   `json:"voter"`
	}
	if !decodeBody(ctx, &req) {
		return
	}
	if err := peerid.Valid(req.ID); err != nil {
		badRequest(ctx, "id: "+err.Error())
		return
	}
	by := "-"
	if p := principalOf(ctx); p != nil {
		by = p.Name
	}
	if err := s.cfg.Cluster.Admit(req.ID, req.Voter, by); err != nil {
		fail(ctx, err)
		return
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"admitted": req.ID, "voter": req.Voter})
}

func (s *Server) clusterRemove(ctx *fasthttp.RequestCtx, id string) {
	if !s.cfg.Cluster.IsLeader() {
		s.toLeader(ctx)
		return
	}
	if err := s.cfg.Cluster.Remove(id); err != nil {
		if errors.Is(err, cluster.ErrNotLeader) {
			// This node handed leadership over (it is removing itself):
			// let the new leader, once known, do the removal.
			s.awaitOtherLeader(5 * time.Second)
			s.toLeader(ctx)
			return
		}
		fail(ctx, err)
		return
	}
	ctx.SetStatusCode(http.StatusNoContent)
}

// awaitOtherLeader waits until another node is known to lead.
func (s *Server) awaitOtherLeader(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if !s.cfg.Cluster.IsLeader() {
			if _, err := s.cfg.Cluster.LeaderHTTP(); err == nil {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fetchLocal asks node id for its own view of a listing (scope=local).
func (s *Server) fetchLocal(creds [][2]string, id, path string, out any) error {
	m, ok := s.cfg.Cluster.Member(id)
	if !ok || m.Status != cluster.NodeUp {
		return fmt.Errorf("node %s is not up", id)
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(s.fwd.scheme() + "://" + m.HTTPAddr + path)
	req.Header.Set(hopHeader, "1")
	for _, h := range creds {
		req.Header.Set(h[0], h[1])
	}
	if err := s.fwd.client(id, m.HTTPAddr).DoTimeout(req, resp, 2*time.Second); err != nil {
		return err
	}
	if resp.StatusCode() != http.StatusOK {
		return fmt.Errorf("node %s answered %d", id, resp.StatusCode())
	}
	return json.Unmarshal(resp.Body(), out)
}

// remoteNodes lists the other nodes that own something in the list.
func remoteNodes(self string, nodes []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range nodes {
		if n != "" && n != self && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// gatherOwned asks every other node in owners for its own view of a
// listing (path with scope=local; items under field) and returns, by
// "node/key", the raw items each node owns. A node that does not answer in
// two seconds is skipped: its items keep this node's view.
func (s *Server) gatherOwned(ctx *fasthttp.RequestCtx, owners []string, path, field string, key func(raw json.RawMessage) (node, k string, ok bool)) map[string]json.RawMessage {
	// The caller's credentials, copied: ctx is not for other goroutines.
	var creds [][2]string
	if a := ctx.Request.Header.Peek("Authorization"); len(a) > 0 {
		creds = append(creds, [2]string{"Authorization", string(a)})
	}
	if p := principalOf(ctx); p != nil && !p.Capability && s.cfg.Peers != nil {
		creds = append(creds, [2]string{principalHeader, p.Name})
	} else if p != nil && !p.Capability && s.cfg.ClusterKey != "" {
		creds = append(creds, [2]string{principalHeader, p.Name}, [2]string{cluster.KeyHeader, s.cfg.ClusterKey})
	}
	out := map[string]json.RawMessage{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, id := range remoteNodes(s.cfg.Cluster.ID(), owners) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var res map[string]json.RawMessage
			var items []json.RawMessage
			if s.fetchLocal(creds, id, path, &res) != nil || json.Unmarshal(res[field], &items) != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, raw := range items {
				if node, k, ok := key(raw); ok && node == id {
					out[node+"/"+k] = raw
				}
			}
		}()
	}
	wg.Wait()
	return out
}

// listRDDsCluster lists shared RDDs with state and key count from the node
// that owns each.
func (s *Server) listRDDsCluster(ctx *fasthttp.RequestCtx) {
	c, cancel := reqContext(ctx)
	defer cancel()
	all := s.cfg.Store.List(c)
	owners := make([]string, len(all))
	for i, r := range all {
		owners[i] = r.Node
	}
	owned := s.gatherOwned(ctx, owners, "/v1/rdds?scope=local", "rdds", func(raw json.RawMessage) (string, string, bool) {
		var r struct{ Name, Node string }
		return r.Node, r.Name, json.Unmarshal(raw, &r) == nil
	})
	applied := s.copiesApplied(ctx, all)
	out := make([]any, len(all))
	for i, r := range all {
		out[i] = r
		if raw, ok := owned[r.Node+"/"+r.Name]; ok {
			out[i] = raw
			var info kvstore.RDDInfo
			if len(r.Copies) > 1 && json.Unmarshal(raw, &info) == nil {
				out[i] = info
				r = info
			}
		}
		// Each copy's applied index, from the node that runs it.
		for j, c := range r.Copies {
			if a, ok := applied[c.Node+"/"+r.Name]; ok && c.Role == "copy" {
				r.Copies[j].AppliedIndex = a
				out[i] = r
			}
		}
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"rdds": out})
}

// copiesApplied asks the nodes that hold copies (besides owners) what
// log index each applied, by node/rdd: the registry records copies but
// not their progress, which only their own node knows.
func (s *Server) copiesApplied(ctx *fasthttp.RequestCtx, all []kvstore.RDDInfo) map[string]uint64 {
	out := map[string]uint64{}
	var nodes []string
	for _, r := range all {
		for _, c := range r.Copies {
			if c.Role != "copy" {
				continue
			}
			if c.AppliedIndex > 0 { // a copy on this node
				out[c.Node+"/"+r.Name] = c.AppliedIndex
			} else {
				nodes = append(nodes, c.Node)
			}
		}
	}
	if len(nodes) == 0 {
		return out
	}
	got := s.gatherOwned(ctx, nodes, "/v1/rdds?scope=local", "rdds", func(raw json.RawMessage) (string, string, bool) {
		var r struct {
			Name   string
			Copies []kvstore.Copy
		}
		if json.Unmarshal(raw, &r) != nil {
			return "", "", false
		}
		for _, c := range r.Copies {
			if c.Role == "copy" && c.AppliedIndex > 0 {
				return c.Node, r.Name, true // the answering node's own copy
			}
		}
		return "", "", false
	})
	for k, raw := range got {
		var r struct {
			Copies []kvstore.Copy
		}
		_ = json.Unmarshal(raw, &r)
		node := k[:strings.IndexByte(k, '/')]
		for _, c := range r.Copies {
			if c.Node == node && c.AppliedIndex > 0 {
				out[k] = c.AppliedIndex
			}
		}
	}
	return out
}

// listSessionsCluster is GET /sessions with each session's state from the
// node that runs it.
func (s *Server) listSessionsCluster(ctx *fasthttp.RequestCtx) {
	from, size, ok := pageArgs(ctx)
	if !ok {
		return
	}
	all := s.cfg.Sessions.List()
	owners := make([]string, len(all))
	for i, si := range all {
		owners[i] = si.Node
	}
	owned := s.gatherOwned(ctx, owners, "/sessions?scope=local&size=1000000", "sessions", func(raw json.RawMessage) (string, string, bool) {
		var si struct {
			ID   int64
			Node string
		}
		return si.Node, strconv.FormatInt(si.ID, 10), json.Unmarshal(raw, &si) == nil
	})
	out := make([]any, len(all))
	for i, si := range all {
		view := s.mayViewSession(ctx, si.ID)
		if !view {
			si.Log = []string{}
		}
		out[i] = si
		if raw, ok := owned[si.Node+"/"+strconv.FormatInt(si.ID, 10)]; ok {
			out[i] = raw
			if !view {
				out[i] = withoutLog(raw)
			}
		}
	}
	lo, hi := page(len(out), from, size)
	writeJSON(ctx, http.StatusOK, map[string]any{"from": from, "total": len(out), "sessions": out[lo:hi]})
}

// withoutLog is a listed item (JSON object) with "log": [].
func withoutLog(raw json.RawMessage) any {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return raw
	}
	m["log"] = json.RawMessage("[]")
	return m
}

// internalSilent answers a follower's placement with the peers this
// leader cannot reach now.
func (s *Server) internalSilent(ctx *fasthttp.RequestCtx) {
	b, err := s.cfg.Cluster.ServeSilent()
	if err != nil {
		fail(ctx, err)
		return
	}
	ctx.Response.Header.SetContentType("application/json")
	ctx.SetBody(b)
}

// internalIndex answers a follower's CatchUp with the commit index.
func (s *Server) internalIndex(ctx *fasthttp.RequestCtx) {
	b, err := s.cfg.Cluster.ServeIndex()
	if err != nil {
		fail(ctx, err)
		return
	}
	ctx.SetBody(b)
}
