package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/srdd/srdd/internal/peerid"
	"github.com/srdd/srdd/internal/tlsconf"
)

// Peer trust (docs/ARCHITECTURE.md, "Peer trust"): with peer TLS, the
// Raft port is the only node-to-node port. Every connection on it is
// mutual TLS against the peer CA; the certificate proves a node ID
// (internal/peerid). After the handshake the dialer sends one byte that
// says what follows: Raft RPCs, HTTP (the internal routes, forwarded
// client requests, joins and removals), or gRPC (Spark Connect streams
// routed to the node that holds their session).
const (
	muxRaft    byte = 'R'
	muxHTTP    byte = 'H'
	muxConnect byte = 'C'
	// peerHandshakeTimeout bounds the TLS handshake and the mux byte.
	peerHandshakeTimeout = 10 * time.Second
)

// PeerCreds are this node's peer certificate and key and the CA peers'
// certificates must chain to. Reload swaps them atomically: handshakes
// in progress keep what they read, later ones see the new files.
type PeerCreds struct {
	certFile, keyFile, caFile string
	cur                       atomic.Pointer[peerMaterial]
}

type peerMaterial struct {
	cert *tls.Certificate
	pool *x509.CertPool
}

// LoadPeerCreds reads the PEM files of --peer-cert, --peer-key, --peer-ca.
func LoadPeerCreds(certFile, keyFile, caFile string) (*PeerCreds, error) {
	if certFile == "" || keyFile == "" || caFile == "" {
		return nil, errors.New("peer TLS needs --peer-cert, --peer-key and --peer-ca")
	}
	p := &PeerCreds{certFile: certFile, keyFile: keyFile, caFile: caFile}
	if err := p.Reload(); err != nil {
		return nil, err
	}
	return p, nil
}

// Reload re-reads the files. On any error the loaded ones are kept.
func (p *PeerCreds) Reload() error {
	kp, err := tls.LoadX509KeyPair(p.certFile, p.keyFile)
	if err != nil {
		return fmt.Errorf("cannot load peer certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(kp.Certificate[0])
	if err != nil {
		return fmt.Errorf("cannot parse peer certificate: %w", err)
	}
	id, err := peerid.NodeID(leaf)
	if err != nil {
		return fmt.Errorf("peer certificate %s: %w", p.certFile, err)
	}
	// A reload keeps the node's identity: a certificate naming another
	// node is refused, and the loaded one stays.
	if old := p.cur.Load(); old != nil {
		if was, _ := peerid.NodeID(old.cert.Leaf); was != id {
			return fmt.Errorf("peer certificate %s names node %q; this node is %q", p.certFile, id, was)
		}
	}
	kp.Leaf = leaf
	pool, err := tlsconf.Pool(p.caFile)
	if err != nil {
		return fmt.Errorf("cannot load peer CA: %w", err)
	}
	p.cur.Store(&peerMaterial{cert: &kp, pool: pool})
	return nil
}

// NodeID is the node ID this node's own certificate names.
func (p *PeerCreds) NodeID() string {
	id, _ := peerid.NodeID(p.cur.Load().cert.Leaf)
	return id
}

// verify checks a peer's chain against the current CA and returns the
// node ID its leaf certificate proves.
func (p *PeerCreds) verify(raw [][]byte, usage x509.ExtKeyUsage) (string, error) {
	if len(raw) == 0 {
		return "", errors.New("peer sent no certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, b := range raw {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return "", fmt.Errorf("bad peer certificate: %w", err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: p.cur.Load().pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return "", fmt.Errorf("peer certificate not trusted: %w", err)
	}
	return peerid.NodeID(certs[0])
}

// serverConfig is the TLS configuration of the Raft port: a client
// certificate from the peer CA is required.
func (p *PeerCreds) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequireAnyClientCert, // verified below, against the CA loaded now
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return p.cur.Load().cert, nil
		},
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, err := p.verify(raw, x509.ExtKeyUsageClientAuth)
			return err
		},
	}
}

// clientConfig is the TLS configuration for dialling a peer. want, if
// set, is the node ID the peer must prove (the member we meant to dial).
func (p *PeerCreds) clientConfig(want string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain and the node ID are checked in VerifyPeerCertificate
		// against the CA loaded now; host names do not identify nodes.
		InsecureSkipVerify: true, //nolint:gosec // verified below
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return p.cur.Load().cert, nil
		},
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			id, err := p.verify(raw, x509.ExtKeyUsageServerAuth)
			if err != nil {
				return err
			}
			if want != "" && id != want {
				return fmt.Errorf("peer proved node %q, want %q", id, want)
			}
			return nil
		},
	}
}

// PeerConn is a connection from another node over the peer channel.
type PeerConn struct {
	net.Conn
	id string
}

// PeerNodeID is the node ID the peer's certificate proved.
func (c *PeerConn) PeerNodeID() string { return c.id }

// peerMux accepts connections on the Raft port, does the TLS handshake,
// and hands Raft, HTTP and Spark Connect connections to their servers.
type peerMux struct {
	ln    net.Listener
	creds *PeerCreds
	log   hclog.Logger
	// admitRaft says whether node id may send Raft RPCs (set once Raft
	// runs; until then Raft connections are refused).
	admitRaft atomic.Pointer[func(id string) error]
	isolated  *atomic.Bool
	track     func(net.Conn) net.Conn
	raftCh    chan *PeerConn
	closed    chan struct{}
	closeOnce sync.Once
	// The HTTP and Spark Connect channels, each handed to its listener.
	http, connect *muxChannel
}

// muxChannel hands the mux's channels of one kind to their listener.
type muxChannel struct {
	ch chan net.Conn
	// done closes with the listener (chanListener.Close): channels that
	// arrive after it are closed at once, so a node's server can shut
	// down while its peers still dial it.
	done chan struct{}
	once sync.Once
	// on: a listener was asked for. Spark Connect channels to a node
	// without a Spark Connect port are closed at once.
	on atomic.Bool
}

func newMuxChannel(on bool) *muxChannel {
	c := &muxChannel{ch: make(chan net.Conn), done: make(chan struct{})}
	c.on.Store(on)
	return c
}

// offer hands pc to c's listener, or closes it.
func (m *peerMux) offer(c *muxChannel, pc *PeerConn) {
	if !c.on.Load() {
		m.log.Debug("peer channel of a kind this node does not serve; closed", "peer", pc.id)
		pc.Close()
		return
	}
	select {
	case c.ch <- pc:
	case <-m.closed:
		pc.Close()
	case <-c.done:
		pc.Close()
	}
}

func newPeerMux(ln net.Listener, creds *PeerCreds, log hclog.Logger, isolated *atomic.Bool, track func(net.Conn) net.Conn) *peerMux {
	m := &peerMux{ln: ln, creds: creds, log: log, isolated: isolated, track: track,
		raftCh: make(chan *PeerConn), closed: make(chan struct{}), http: newMuxChannel(true), connect: newMuxChannel(false)}
	go m.acceptLoop()
	return m
}

func (m *peerMux) acceptLoop() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			m.log.Error("peer listener failed", "error", err)
			m.close()
			return
		}
		if m.isolated.Load() {
			c.Close()
			continue
		}
		go m.handshake(c)
	}
}

// handshake authenticates one inbound connection and dispatches it. A
// peer without a certificate from the CA, or a plaintext one, fails here.
func (m *peerMux) handshake(raw net.Conn) {
	tc := tls.Server(raw, m.creds.serverConfig())
	_ = tc.SetDeadline(time.Now().Add(peerHandshakeTimeout))
	if err := tc.Handshake(); err != nil {
		m.log.Warn("peer refused: TLS handshake failed", "remote", raw.RemoteAddr().String(), "error", err)
		raw.Close()
		return
	}
	// verify ran in the handshake; this only reads the ID again.
	id, err := peerid.NodeID(tc.ConnectionState().PeerCertificates[0])
	if err != nil {
		tc.Close()
		return
	}
	var b [1]byte
	if _, err := tc.Read(b[:]); err != nil {
		tc.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{})
	pc := &PeerConn{Conn: m.track(tc), id: id}
	switch b[0] {
	case muxRaft:
		admit := m.admitRaft.Load()
		if admit == nil {
			m.log.Debug("raft connection before raft runs; refused", "peer", id)
			pc.Close()
			return
		}
		if err := (*admit)(id); err != nil {
			m.log.Warn("peer refused for raft", "peer", id, "remote", raw.RemoteAddr().String(), "error", err)
			pc.Close()
			return
		}
		select {
		case m.raftCh <- pc:
		case <-m.closed:
			pc.Close()
		}
	case muxHTTP:
		m.offer(m.http, pc)
	case muxConnect:
		m.offer(m.connect, pc)
	default:
		m.log.Warn("peer refused: unknown channel", "peer", id, "byte", b[0])
		pc.Close()
	}
}

// dial opens a peer channel of kind to addr; want, if set, is the node
// ID the peer must prove.
func (m *peerMux) dial(ctx context.Context, addr string, kind byte, want string) (net.Conn, error) {
	d := net.Dialer{}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, m.creds.clientConfig(want))
	if dl, ok := ctx.Deadline(); ok {
		_ = tc.SetDeadline(dl)
	} else {
		_ = tc.SetDeadline(time.Now().Add(peerHandshakeTimeout))
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: raw.RemoteAddr(), Err: err}
	}
	if _, err := tc.Write([]byte{kind}); err != nil {
		tc.Close()
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: raw.RemoteAddr(), Err: err}
	}
	_ = tc.SetDeadline(time.Time{})
	return tc, nil
}

func (m *peerMux) close() {
	m.closeOnce.Do(func() {
		close(m.closed)
		m.ln.Close()
	})
}

// chanListener is a net.Listener fed by the mux: its HTTP or its Spark
// Connect channels. admit, if set, says whether the node ID a channel's
// certificate proved is a member (a removed node's certificate still
// chains to the CA).
type chanListener struct {
	m     *peerMux
	c     *muxChannel
	admit func(id string) error
}

func (l chanListener) Accept() (net.Conn, error) {
	for {
		select {
		case c := <-l.c.ch:
			select {
			case <-l.c.done: // closed meanwhile: select picked at random
				c.Close()
				return nil, net.ErrClosed
			default:
			}
			if l.admit != nil {
				pc, ok := c.(*PeerConn)
				if !ok {
					c.Close()
					continue
				}
				if err := l.admit(pc.id); err != nil {
					l.m.log.Warn("peer channel refused", "peer", pc.id, "error", err)
					c.Close()
					continue
				}
			}
			return c, nil
		case <-l.m.closed:
			return nil, net.ErrClosed
		case <-l.c.done:
			return nil, net.ErrClosed
		}
	}
}

// Close stops the listener's channels (the mux itself closes with the
// node): fasthttp's graceful shutdown closes its listener and then waits
// for open connections to end, and a peer's new channel accepted
// meanwhile held it for its whole 10 s deadline.
func (l chanListener) Close() error {
	l.c.once.Do(func() { close(l.c.done) })
	return nil
}
func (l chanListener) Addr() net.Addr { return l.m.ln.Addr() }

// ConnectListener is the listener of Spark Connect streams that other
// members route to this node over the peer channel (gRPC; the channel's
// certificate proved the member), or nil without peer TLS. A node asks
// for it once, when it serves Spark Connect.
func (n *Node) ConnectListener() net.Listener {
	if n.mux == nil {
		return nil
	}
	n.mux.connect.on.Store(true)
	return chanListener{m: n.mux, c: n.mux.connect, admit: n.AdmitPeer}
}

// memberAt returns the ID of the member of the Raft configuration at
// address addr, or "".
func (n *Node) memberAt(addr string) string {
	r := n.running.Load()
	if r == nil {
		return ""
	}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return ""
	}
	for _, s := range f.Configuration().Servers {
		if string(s.Address) == addr {
			return string(s.ID)
		}
	}
	return ""
}

// AdmitPeer reports whether node id may talk to this node as a member:
// it must be in the current Raft configuration. A node with an empty
// configuration (it is joining) admits any node of the peer CA: the
// leader that adds it calls first.
func (n *Node) AdmitPeer(id string) error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	servers := f.Configuration().Servers
	if len(servers) == 0 {
		return nil
	}
	for _, s := range servers {
		if string(s.ID) == id {
			return nil
		}
	}
	return fmt.Errorf("node %q is %w", id, ErrNotMember)
}

// ErrNotMember is AdmitPeer's answer for a node that is not a member
// (any other error: membership could not be read).
var ErrNotMember = errors.New("not a member of the cluster")

// checkRPC checks a Raft RPC's header against the node ID the
// connection's certificate proved: a member may speak only as itself.
func (n *Node) checkRPC(certID string, h raft.RPCHeader) error {
	if string(h.ID) != certID {
		return fmt.Errorf("rpc claims to come from %q over a connection of %q", h.ID, certID)
	}
	f := n.raft.GetConfiguration()
	if f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			// hashicorp/raft (protocol 3) sets Addr on every RPC; an empty
			// one would make Raft fall back to the RPC's own leader or
			// candidate address, which nothing here checks.
			if string(s.ID) == certID && string(s.Address) != string(h.Addr) {
				return fmt.Errorf("rpc from %q claims address %q; the member's is %q", certID, h.Addr, s.Address)
			}
		}
	}
	return nil
}

// PeerTLS reports whether node-to-node traffic runs over peer mTLS.
func (n *Node) PeerTLS() bool { return n.mux != nil }

// PeerListener is the listener of HTTP over the peer channel, or nil
// without peer TLS.
func (n *Node) PeerListener() net.Listener {
	if n.mux == nil {
		return nil
	}
	return chanListener{m: n.mux, c: n.mux.http}
}

// DialPeer opens an HTTP peer channel to member id (its Raft address),
// which must prove it is id.
func (n *Node) DialPeer(id string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return n.dialPeer(ctx, id, muxHTTP)
}

// DialConnect opens a Spark Connect peer channel to member id, which
// must prove it is id: gRPC follows, served by id's ConnectListener.
func (n *Node) DialConnect(ctx context.Context, id string) (net.Conn, error) {
	return n.dialPeer(ctx, id, muxConnect)
}

func (n *Node) dialPeer(ctx context.Context, id string, kind byte) (net.Conn, error) {
	if n.mux == nil {
		return nil, errors.New("no peer TLS")
	}
	if n.isolated.Load() {
		return nil, errIsolated
	}
	addr := ""
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if string(s.ID) == id {
				addr = string(s.Address)
			}
		}
	}
	if addr == "" {
		if m, ok := n.Member(id); ok {
			addr = m.RaftAddr
		}
	}
	if addr == "" {
		return nil, fmt.Errorf("node %s has no known raft address", id)
	}
	return n.mux.dial(ctx, addr, kind, id)
}

// LeaderID returns the ID of the leader this node knows, or ErrNoLeader.
func (n *Node) LeaderID() (string, error) {
	if _, id := n.raft.LeaderWithID(); id != "" {
		return string(id), nil
	}
	if n.member() {
		n.awaitLeader(time.Now().Add(n.cfg.LeaderWait), 0)
	}
	if _, id := n.raft.LeaderWithID(); id != "" {
		return string(id), nil
	}
	return "", ErrNoLeader
}

// DialPeerAddr opens an HTTP peer channel to a Raft address whose node
// is not known yet (a joiner asking a member to add it).
func DialPeerAddr(creds *PeerCreds, addr string, timeout time.Duration) (net.Conn, error) {
	m := &peerMux{creds: creds}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return m.dial(ctx, addr, muxHTTP, "")
}

// DialPeerRaft opens a Raft channel to the member at addr, proving the
// node creds names: hashicorp/raft's wire protocol follows. It is for
// tools and tests that speak Raft to a member as a member (the test of
// docs/ARCHITECTURE.md invariant 10 sends an entry no binary knows).
func DialPeerRaft(creds *PeerCreds, addr string, timeout time.Duration) (net.Conn, error) {
	m := &peerMux{creds: creds}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return m.dial(ctx, addr, muxRaft, "")
}
