package httpapi

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"
)

// peerIDKey is the user value under which the peer channel stores the
// node ID proven by the caller's certificate (docs/ARCHITECTURE.md,
// "Peer trust").
const peerIDKey = "srdd.peerID"

// fromPeer reports whether the request came from another node of this
// cluster: over the peer channel (mutual TLS on the Raft port, the
// caller's node ID proven by its certificate), or, in development mode
// without peer TLS, with the cluster key. Node-to-node headers
// (X-Srdd-Hops, X-Srdd-Placed, X-Srdd-Principal) are honoured only when
// it is true.
func fromPeer(ctx *fasthttp.RequestCtx) bool {
	if id, _ := ctx.UserValue(peerIDKey).(string); id != "" {
		return true
	}
	return ctx.UserValue(peerKey) != nil
}

// fromMember reports whether the request came from a member of the
// cluster: a peer (fromPeer) whose node is in the Raft configuration, or,
// in development mode, a caller with the cluster key. peerGate refuses
// non-members on every peer route but a join; a joining node is a peer
// that is not a member yet.
func (s *Server) fromMember(ctx *fasthttp.RequestCtx) bool {
	if !fromPeer(ctx) {
		return false
	}
	id := peerID(ctx)
	return id == "" || (s.cfg.Peers != nil && s.cfg.Peers.AdmitPeer(id) == nil)
}

// isJoin reports whether seg is POST /v1/cluster/join's path.
func isJoin(seg []string) bool {
	return len(seg) == 3 && seg[0] == "v1" && seg[1] == "cluster" && seg[2] == "join"
}

// peerID is the node ID proven by the caller's peer certificate, or "".
func peerID(ctx *fasthttp.RequestCtx) string {
	id, _ := ctx.UserValue(peerIDKey).(string)
	return id
}

// Peers is what the API needs from the peer channel (cluster.Node).
type Peers interface {
	// DialPeer opens an HTTP connection to member id over mutual TLS;
	// the peer must prove it is id.
	DialPeer(id string, timeout time.Duration) (net.Conn, error)
	// LeaderID is the current leader's node ID (waiting a little for one).
	LeaderID() (string, error)
	// AdmitPeer reports whether node id is a member of the cluster.
	AdmitPeer(id string) error
	// RaftAddr is this node's advertised Raft (peer channel) address.
	RaftAddr() string
}

// ServePeer serves HTTP from other nodes on ln, the peer channel: every
// connection's certificate proved a node ID (cluster.PeerConn).
func (s *Server) ServePeer(ln net.Listener) error { return s.peerSrv.Serve(ln) }

// handlePeer marks a request from the peer channel with the caller's
// node ID, then serves it as any other.
func (s *Server) handlePeer(ctx *fasthttp.RequestCtx) {
	pc, ok := ctx.Conn().(interface{ PeerNodeID() string })
	if !ok || pc.PeerNodeID() == "" {
		writeError(ctx, http.StatusForbidden, "forbidden", "not a peer connection")
		return
	}
	ctx.SetUserValue(peerIDKey, pc.PeerNodeID())
	s.handle(ctx)
}

// peerGate applies peer trust before routing (docs/ARCHITECTURE.md,
// "Peer trust"). On the peer channel, the caller must be a member of the
// Raft configuration, except for a join, which only the joining node
// itself (or a member forwarding it) may ask for (clusterJoin). With
// peer TLS on, the client port refuses the internal routes and joins.
func (s *Server) peerGate(ctx *fasthttp.RequestCtx, m match, method string, seg []string) bool {
	id := peerID(ctx)
	switch {
	case id != "" && !isJoin(seg):
		if s.cfg.Peers == nil {
			forbidden(ctx, "no peer channel on this node")
			return false
		}
		if err := s.cfg.Peers.AdmitPeer(id); err != nil {
			s.cfg.Logger.Warn("peer call refused", "peer", id, "path", string(ctx.Path()), "error", err)
			forbidden(ctx, err.Error())
			return false
		}
	case id == "" && s.cfg.Peers != nil && m.nodeOnly(method, seg) && method != http.MethodDelete:
		forbidden(ctx, "node-to-node calls are served only on the peer channel (the Raft port, mutual TLS)")
		return false
	}
	return true
}

// joinAllowed says whether the peer that sent a join for node id may: it
// is that node (its certificate names it), or a member forwarding it.
func (s *Server) joinAllowed(ctx *fasthttp.RequestCtx, id string) bool {
	if s.cfg.Peers == nil {
		return true // no peer TLS: the cluster key or auth decided
	}
	caller := peerID(ctx)
	if caller == id || (caller != "" && s.cfg.Peers.AdmitPeer(caller) == nil) {
		return true
	}
	forbidden(ctx, fmt.Sprintf("a join of %q must come from that node's peer certificate (the caller proved %q)", id, caller))
	return false
}
