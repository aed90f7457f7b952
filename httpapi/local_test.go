package httpapi

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// TestLocal: a request another front end builds (the Redis port) runs
// as the principal that front end gives: its rule applies, no principal
// is 401, an Authorization header it carries is not what decides, and
// the Host check does not apply. A client cannot make a request local.
func TestLocal(t *testing.T) {
	s, tokens := fakeServer(t)
	s.cfg.LoopbackOnly = true // a Host other than loopback is refused to clients
	local := func(user, method, uri, body string) int {
		t.Helper()
		ctx := &fasthttp.RequestCtx{}
		ctx.Init(&fasthttp.Request{}, nil, nil)
		ctx.Request.Header.SetMethod(method)
		ctx.Request.SetRequestURI(uri)
		ctx.Request.Header.SetHost("evil.example") // not loopback
		ctx.Request.Header.Set("X-Requested-By", "test")
		if body != "" {
			ctx.Request.Header.SetContentType("application/json")
			ctx.Request.SetBodyString(body)
		}
		// A token of a user who may do anything rides along; the
		// principal given to Local decides.
		ctx.Request.Header.Set("Authorization", "Bearer "+tokens["admin"])
		p := s.cfg.Auth
		if user == "" {
			s.Local(ctx, nil)
		} else {
			pr, ok := p.Token(tokens[user])
			if !ok {
				t.Fatalf("no user %s", user)
			}
			s.Local(ctx, pr)
		}
		return ctx.Response.StatusCode()
	}
	f := func(user, method, uri, body string, want int) {
		t.Helper()
		if got := local(user, method, uri, body); got != want {
			t.Fatalf("%s %s as %q: %d, want %d", method, uri, user, got, want)
		}
	}
	f("reader", "POST", "/v1/rdds/r1/get", `{"keys":["k"]}`, 200)
	f("reader", "POST", "/v1/rdds/r1/set", `{"items":{"k":1}}`, 403)
	f("writer", "POST", "/v1/rdds/r1/set", `{"items":{"k":1}}`, 200)
	f("", "POST", "/v1/rdds/r1/get", `{"keys":["k"]}`, 401)

	// The same request from a client is not local: the Host check applies.
	ctx, _ := fakeRequest(s, tokens, "admin", "GET", "/v1/rdds/r1/keys/k", "")
	if ctx.Response.StatusCode() != 200 {
		t.Fatalf("a client's GET: %d", ctx.Response.StatusCode())
	}
	ctx = &fasthttp.RequestCtx{}
	ctx.Request.Header.SetMethod("GET")
	ctx.Request.SetRequestURI("/v1/rdds/r1/keys/k")
	ctx.Request.Header.SetHost("evil.example")
	ctx.Request.Header.Set("Authorization", "Bearer "+tokens["admin"])
	s.handle(ctx)
	if ctx.Response.StatusCode() == 200 {
		t.Fatal("a client's request for another Host was served")
	}
}
