package httpapi

import (
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// errStaleConn: a pooled connection to another node was closed by that
// node while idle (it died or restarted). Nothing was written on it, so
// the request is sent again on a new connection whatever its method.
var errStaleConn = errors.New("pooled connection closed by the peer while idle")

// checkedConn is a pooled connection to another node that, before the
// first write of each request, makes sure the peer has not closed it
// while it sat idle in the pool. Without the check, a request forwarded
// to a node that restarted at the same address goes out on a dead
// connection and fails with "server closed connection", which for a POST
// cannot be told apart from a crash after the request arrived.
type checkedConn struct {
	net.Conn
	idle atomic.Bool // set by reads (a response), cleared by the next write
}

func (c *checkedConn) Read(p []byte) (int, error) {
	c.idle.Store(true)
	return c.Conn.Read(p)
}

func (c *checkedConn) Write(p []byte) (int, error) {
	if c.idle.Swap(false) && peerClosed(c.Conn) {
		return 0, errStaleConn
	}
	return c.Conn.Write(p)
}

// dialChecked dials addr for a forwarding HostClient.
func dialChecked(addr string) (net.Conn, error) {
	conn, err := fasthttp.DialTimeout(addr, time.Second)
	if err != nil {
		return nil, err
	}
	return &checkedConn{Conn: conn}, nil
}

// retryForward allows a forwarded request to be sent again when it never
// left (a stale pooled connection), or when it only reads. A PUT is
// idempotent by HTTP's rules but not here: sent again later, it could
// overwrite another client's newer value; and a retry that fails to
// connect would hide that the first attempt was sent (the caller must
// then answer outcome_unknown, not owner_unavailable: Server.forward).
func retryForward(req *fasthttp.Request, attempts int, err error) (resetTimeout, retry bool) {
	if errors.Is(err, errStaleConn) {
		return false, true
	}
	return false, req.Header.IsGet() || req.Header.IsHead()
}
