package cluster

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// tcpStreamLayer is raft.StreamLayer over a TCP listener we opened
// ourselves, so the bound address (port 0 in tests) is known before Raft
// starts and no advertise address needs guessing.
type tcpStreamLayer struct {
	ln       *net.TCPListener
	adv      net.Addr    // what peers dial, if not the bound address (Config.RaftAdvertise)
	isolated atomic.Bool // fault injection: refuse all Raft traffic
	mu       sync.Mutex
	conns    map[net.Conn]bool
	// mux, with peer TLS, owns the listener: inbound Raft connections
	// reach peerTransport from it, and Dial goes through it.
	mux   *peerMux
	owner *Node
}

// errIsolated is returned while the node is cut off on purpose.
var errIsolated = errors.New("node isolated")

func (t *tcpStreamLayer) Accept() (net.Conn, error) {
	if t.mux != nil {
		// peerTransport serves inbound connections itself.
		<-t.mux.closed
		return nil, net.ErrClosed
	}
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return nil, err
		}
		if t.isolated.Load() {
			c.Close()
			continue
		}
		return t.track(c), nil
	}
}

func (t *tcpStreamLayer) Close() error {
	if t.mux != nil {
		t.mux.close()
		// Inbound connections are served outside NetworkTransport
		// (peerTransport): end them with the node.
		t.mu.Lock()
		defer t.mu.Unlock()
		for c := range t.conns {
			c.Close()
		}
		return nil
	}
	return t.ln.Close()
}
func (t *tcpStreamLayer) Addr() net.Addr {
	if t.adv != nil {
		return t.adv
	}
	return t.ln.Addr()
}

// hostPort is an advertised address that may name a host (a DNS name that
// follows the node, such as a StatefulSet pod's), resolved at each dial.
type hostPort string

func (h hostPort) Network() string { return "tcp" }
func (h hostPort) String() string  { return string(h) }

func (t *tcpStreamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if t.isolated.Load() {
		return nil, errIsolated
	}
	if t.mux != nil {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		c, err := t.mux.dial(ctx, string(addr), muxRaft, t.owner.memberAt(string(addr)))
		if err != nil {
			return nil, err
		}
		return t.track(c), nil
	}
	c, err := net.DialTimeout("tcp", string(addr), timeout)
	if err != nil {
		return nil, err
	}
	return t.track(c), nil
}

func (t *tcpStreamLayer) track(c net.Conn) net.Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		t.conns = map[net.Conn]bool{}
	}
	t.conns[c] = true
	return &trackedConn{Conn: c, t: t}
}

// isolate cuts (or restores) Raft traffic, closing open connections.
func (t *tcpStreamLayer) isolate(on bool) {
	t.isolated.Store(on)
	if !on {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.conns {
		c.Close()
	}
}

type trackedConn struct {
	net.Conn
	t *tcpStreamLayer
}

func (c *trackedConn) Close() error {
	c.t.mu.Lock()
	delete(c.t.conns, c.Conn)
	c.t.mu.Unlock()
	return c.Conn.Close()
}
