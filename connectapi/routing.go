package connectapi

import (
	"context"
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/srdd/srdd/auth"
	"github.com/srdd/srdd/cluster"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Routing between nodes. A client may dial any node: a stream for a
// session held by another member is forwarded to that member's Spark
// Connect server for routed streams (ServePeer), over the peer channel
// (mutual TLS, the member's node certificate; cluster.Node.DialConnect),
// as gRPC. The first node authenticated the caller and checked it may
// use the session; it vouches for the caller by name (principalHeader),
// as a forwarded REST call does, and the session's node checks the
// caller against its own users file again, counts the execution caps
// (it holds the session, so its count is the whole count) and applies
// the conf policy. A routed stream is never routed again.

// principalHeader carries the vouched caller on a routed stream. It is
// read only on the peer server: a client's x-srdd-* metadata is dropped
// (forwardKey), and the client port never reads it.
const principalHeader = "x-srdd-principal"

// PeerDialer opens Spark Connect channels to members (cluster.Node).
type PeerDialer interface {
	DialConnect(ctx context.Context, id string) (net.Conn, error)
}

// ServePeer serves the streams other members route to this node, from
// ln (cluster.Node.ConnectListener), until Close.
func (s *Server) ServePeer(ln net.Listener) error { return s.serveOn(s.peerSrv, ln) }

// route forwards stream ss for session rec, held by another member, to
// that member, with the caller p vouched for.
func (s *Server) route(ctx context.Context, ss grpc.ServerStream, method string, md metadata.MD, p *auth.Principal, rec cluster.Session, st *streamStats) error {
	conn, err := s.peerConn(rec.Node)
	if err != nil {
		return status.Errorf(codes.Unavailable, "cannot reach node %s, which holds session %d: %v", rec.Node, rec.ID, err)
	}
	extra := metadata.Pairs(SessionHeader, strconv.FormatInt(rec.ID, 10))
	if p != nil {
		extra.Set(principalHeader, p.Name)
	}
	return proxy(ctx, ss, method, md, &Backend{Conn: conn, Extra: extra}, rec.ID, st, nil)
}

// peerConn is this node's connection to member id, made on first use
// and kept: gRPC reconnects it (with backoff) if the channel breaks.
// Making one closes and forgets those of nodes that are no longer
// members (AdmitPeer says cluster.ErrNotMember; an error reading the
// membership forgets nothing), ending any stream still routed there, so
// the map holds no more than the members of that moment and the new
// entry. Membership is read outside the lock.
func (s *Server) peerConn(id string) (*grpc.ClientConn, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errClosing
	}
	if c := s.peerConns[id]; c != nil {
		s.mu.Unlock()
		return c, nil
	}
	others := make([]string, 0, len(s.peerConns))
	for other := range s.peerConns {
		others = append(others, other)
	}
	s.mu.Unlock()
	var gone []string
	for _, other := range others {
		if s.cfg.AdmitPeer != nil && errors.Is(s.cfg.AdmitPeer(other), cluster.ErrNotMember) {
			gone = append(gone, other)
		}
	}
	c, err := grpc.NewClient("passthrough:///"+id,
		grpc.WithTransportCredentials(insecure.NewCredentials()), // the peer channel is mutual TLS
		grpc.WithWriteBufferSize(ioBuffer), grpc.WithReadBufferSize(ioBuffer),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return s.cfg.Peers.DialConnect(ctx, id) }),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(s.cfg.MaxMessageBytes), grpc.MaxCallSendMsgSize(s.cfg.MaxMessageBytes)))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch existing := s.peerConns[id]; {
	case s.closed:
		_ = c.Close()
		return nil, errClosing
	case existing != nil: // made by another stream meanwhile
		_ = c.Close()
		return existing, nil
	}
	for _, other := range gone {
		if old := s.peerConns[other]; old != nil {
			_ = old.Close()
			delete(s.peerConns, other)
		}
	}
	if s.peerConns == nil {
		s.peerConns = map[string]*grpc.ClientConn{}
	}
	s.peerConns[id] = c
	return c, nil
}

var errClosing = errors.New("the node is closing")

// vouched finds the caller of a routed stream: the name the member that
// routed it vouches for, looked up in this node's users file (nil
// without one).
func (s *Server) vouched(_ context.Context, md metadata.MD) (*auth.Principal, error) {
	if s.cfg.Auth == nil {
		return nil, nil
	}
	names := md.Get(principalHeader)
	if len(names) != 1 {
		return nil, status.Error(codes.Unauthenticated, "a routed Spark Connect stream names its caller once")
	}
	p, ok := s.cfg.Auth.ByName(names[0])
	if !ok {
		return nil, status.Errorf(codes.Unauthenticated, "unknown user %q on node %s", names[0], s.cfg.NodeID)
	}
	return p, nil
}

// peerConnAge bounds a member's routed connection: it is made again
// (streams open on it run to their end), so a connection outlives no
// change of the member's certificate or membership by long.
const peerConnAge = 30 * time.Minute

// peerCreds are the peer server's transport credentials: the channel is
// mutual TLS already (cluster's peer mux), and its handshake only
// carries the node ID the member's certificate proved into each stream's
// peer info. A connection that is no peer channel is refused.
type peerCreds struct{}

// peerAuth is a routed connection's AuthInfo: the member's node ID.
type peerAuth struct {
	credentials.CommonAuthInfo
	id string
}

func (peerAuth) AuthType() string { return "srdd-peer" }

func (peerCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	pc, ok := c.(interface{ PeerNodeID() string })
	if !ok || pc.PeerNodeID() == "" {
		return nil, nil, errors.New("not a peer channel")
	}
	return c, peerAuth{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}, id: pc.PeerNodeID()}, nil
}

func (peerCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("peer credentials serve only")
}
func (peerCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "srdd-peer"}
}
func (peerCreds) Clone() credentials.TransportCredentials { return peerCreds{} }
func (peerCreds) OverrideServerName(string) error         { return nil }

// admitRouted checks, for each routed stream, that the member whose
// connection carries it is a member now. -> that member's node ID.
func (s *Server) admitRouted(ctx context.Context) (string, error) {
	pr, ok := peer.FromContext(ctx)
	var id string
	if ok {
		if a, ok := pr.AuthInfo.(peerAuth); ok {
			id = a.id
		}
	}
	switch {
	case id == "" || s.cfg.AdmitPeer == nil:
		return "", status.Error(codes.Unauthenticated, "a routed Spark Connect stream comes from a member's peer channel")
	case s.cfg.AdmitPeer(id) != nil:
		return "", status.Errorf(codes.PermissionDenied, "node %s is not a member of the cluster", id)
	}
	return id, nil
}
