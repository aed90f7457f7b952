package httpapi

import (
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// A node restarts at the same address: the forwarder's pooled connection
// to the old process is dead. A POST sent next (not idempotent, so never
// retried blindly) must go out on a new connection and succeed.
func TestForwarderSurvivesPeerRestart(t *testing.T) {
	serve := func(addr string) (*fasthttp.Server, string) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok " + string(ctx.Method())) }}
		go func() { _ = srv.Serve(ln) }()
		return srv, ln.Addr().String()
	}
	srv, addr := serve("127.0.0.1:0")
	var f forwarder
	post := func() error {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + addr + "/sessions")
		req.Header.SetMethod("POST")
		req.SetBodyString(`{"kind":"pyspark"}`)
		if err := f.client("", addr).DoTimeout(req, resp, 5*time.Second); err != nil {
			return err
		}
		if string(resp.Body()) != "ok POST" {
			t.Fatalf("body %q", resp.Body())
		}
		return nil
	}
	if err := post(); err != nil {
		t.Fatal(err)
	}
	// The process dies: its connections close; a new one takes the port.
	if err := srv.Shutdown(); err != nil {
		t.Fatal(err)
	}
	srv2, _ := serve(addr)
	defer srv2.Shutdown()
	for i := 0; i < 3; i++ {
		if err := post(); err != nil {
			t.Fatalf("POST %d after the peer restarted: %v", i, err)
		}
	}
}
