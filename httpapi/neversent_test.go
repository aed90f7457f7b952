package httpapi

import (
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestNeverSent: a forward to a port nobody listens on fails before it
// is sent; one cut after it was sent does not count as never sent.
func TestNeverSent(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI("http://" + addr + "/x")
	req.Header.SetMethod("PUT")
	err = (&fasthttp.HostClient{Addr: addr}).DoTimeout(req, resp, 2*time.Second)
	if err == nil || !neverSent(err) {
		t.Fatalf("refused connection: %v (%T), neverSent %v", err, err, neverSent(err))
	}
	// A server that reads the request and closes the connection.
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	go func() {
		c, err := l2.Accept()
		if err == nil {
			buf := make([]byte, 4096)
			_, _ = c.Read(buf)
			c.Close()
		}
	}()
	req.SetRequestURI("http://" + l2.Addr().String() + "/x")
	err = (&fasthttp.HostClient{Addr: l2.Addr().String(), MaxIdemponentCallAttempts: 1}).DoTimeout(req, resp, 2*time.Second)
	if err == nil || neverSent(err) {
		t.Fatalf("connection cut after the request was sent: %v counts as never sent", err)
	}
}
