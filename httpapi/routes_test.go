package httpapi

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/srdd/srdd/auth"
	"github.com/srdd/srdd/internal/testutil"
	"github.com/valyala/fasthttp"
)

// fakeServer is a server with auth on the in-memory fakes (fakes_test.go)
// and a bearer token for each user of the users file it writes.
func fakeServer(t testing.TB) (*Server, map[string]string) {
	t.Helper()
	users := map[string][]string{
		"admin": {"admin"}, "stranger": {"read:other-*"}, "reader": {"read:*"}, "writer": {"write:*"},
		"creator": {"create:*"}, "coder": {"code"}, "metrics": {"metrics"},
		"alice": {"code"}, "vic": {"read:other-*"}, "max": {"read:other-*"}, // session 1's owner, viewer, modifier
	}
	path := filepath.Join(t.TempDir(), "users.json")
	tokens := testutil.WriteUsers(t, path, users, nil)
	a, err := auth.New(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Store: fakeKV{}, Sessions: fakeSessions{}, Batches: fakeBatches{}, Cluster: fakeCluster{},
		Registry: prometheus.NewRegistry(), Auth: a, PlaintextCluster: true, Version: "test"})
	return s, tokens
}

// fakeRequest serves one request on s as user ("" for none) and returns
// the route label it was counted under.
func fakeRequest(s *Server, tokens map[string]string, user, method, uri, body string) (*fasthttp.RequestCtx, string) {
	ctx := &fasthttp.RequestCtx{}
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	ctx.Request.Header.SetHost("127.0.0.1")
	ctx.Request.Header.Set("X-Requested-By", "test")
	if body != "" {
		ctx.Request.Header.SetContentType("application/json")
		ctx.Request.SetBodyString(body)
	}
	if user != "" {
		ctx.Request.Header.Set("Authorization", "Bearer "+tokens[user])
	}
	return ctx, s.route(ctx)
}

// exampleURI fills a route's pattern with names the fakes know.
func exampleURI(r *route) string {
	p := strings.NewReplacer("{name}", "r1", "{key}", "k", "{sid}", "0", "{file}", "console.js").Replace(r.pattern)
	if strings.HasPrefix(p, "/v1/cluster/nodes/") {
		return strings.Replace(p, "{id}", "n2", 1)
	}
	return strings.Replace(p, "{id}", "1", 1)
}

// exampleBody is a body each route's handler accepts.
func exampleBody(r *route) string {
	if r.method != "POST" && r.method != "PUT" {
		return ""
	}
	switch r.name {
	case "POST /v1/rdds":
		return `{"name":"r2"}`
	case "PUT /v1/rdds/{name}/keys/{key}":
		return `1`
	case "POST /v1/rdds/{name}/get", "POST /v1/rdds/{name}/delete":
		return `{"keys":["k"]}`
	case "POST /v1/rdds/{name}/set":
		return `{"items":{"k":1}}`
	case "POST /v1/rdds/{name}/load", "POST /v1/rdds/{name}/save":
		return `{"path":"x.jsonl"}`
	case "POST /sessions/{id}/statements", "POST /sessions/{id}/completion":
		return `{"code":"1"}`
	case "POST /v1/cluster/join":
		return `{"id":"n2","raft_addr":"127.0.0.1:2","http_addr":"127.0.0.1:3"}`
	case "POST /v1/cluster/admit":
		return `{"id":"n2"}`
	case "POST /batches":
		return `{"file":"x.py"}`
	}
	return `{}`
}

// TestEveryRouteAuthorizesByItsRule sends every route of the table,
// with auth on, as an anonymous caller, as a caller its rule refuses and
// as one it allows, against the fakes (no Raft, no interpreter, no
// JVM): anonymous gets 401 unless the route is public, the wrong role
// 403, the right role the handler's own answer, counted under the
// route's name.
func TestEveryRouteAuthorizesByItsRule(t *testing.T) {
	s, tokens := fakeServer(t)
	// Who a rule allows, and who it refuses ("" for no one but anonymous).
	who := map[rule][2]string{
		rulePublic: {"", ""}, ruleAny: {"stranger", ""}, ruleMetrics: {"metrics", "stranger"},
		ruleRead: {"reader", "writer"}, ruleWrite: {"writer", "reader"}, ruleCreate: {"creator", "writer"},
		ruleCode: {"coder", "reader"}, ruleSessionView: {"vic", "stranger"}, ruleSessionModify: {"max", "vic"},
		ruleSessionCode: {"alice", "max"}, ruleAdmin: {"admin", "coder"}, ruleCluster: {"admin", "stranger"},
	}
	for _, r := range routes {
		uri, body := exampleURI(r), exampleBody(r)
		allowed, refused := who[r.rule][0], who[r.rule][1]
		ctx, _ := fakeRequest(s, tokens, "", r.method, uri, body)
		if st := ctx.Response.StatusCode(); (r.rule == rulePublic) != (st != 401) {
			t.Errorf("%s anonymous: %d %s", r.name, st, ctx.Response.Body())
		}
		if refused != "" {
			ctx, name := fakeRequest(s, tokens, refused, r.method, uri, body)
			if st := ctx.Response.StatusCode(); st != 403 || name != r.name {
				t.Errorf("%s as %s: %d (route %q) %s, want 403", r.name, refused, st, name, ctx.Response.Body())
			}
		}
		ctx, name := fakeRequest(s, tokens, allowed, r.method, uri, body)
		if st := ctx.Response.StatusCode(); st == 401 || st == 403 || st >= 500 || name != r.name {
			t.Errorf("%s as %q: %d (route %q) %s", r.name, allowed, st, name, ctx.Response.Body())
		}
	}
}

// TestRouterAnswers checks what the router itself answers, before any
// handler: unknown paths, wrong methods, parameters that do not decode,
// HEAD served by GET.
func TestRouterAnswers(t *testing.T) {
	s, tokens := fakeServer(t)
	f := func(method, uri string, status int, code, route, allow string) {
		t.Helper()
		ctx, name := fakeRequest(s, tokens, "admin", method, uri, "")
		body := string(ctx.Response.Body())
		if ctx.Response.StatusCode() != status || name != route || !strings.Contains(body, code) ||
			string(ctx.Response.Header.Peek("Allow")) != allow {
			t.Errorf("%s %s: %d %q (route %q, Allow %q); want %d %s (route %q, Allow %q)", method, uri,
				ctx.Response.StatusCode(), body, name, ctx.Response.Header.Peek("Allow"), status, code, route, allow)
		}
	}
	f("GET", "/v1", 404, "no_route", routeOther, "")
	f("GET", "/nope", 404, "no_route", routeOther, "")
	f("GET", "/v1/rdds/r1/keys", 404, "no_route", routeOther, "")
	f("GET", "/v1/cluster/nodes", 404, "no_route", routeOther, "")
	f("PUT", "/v1/rdds", 405, "", routeOther, "GET, POST")
	f("POST", "/v1/rdds/r1/keys/k", 405, "", routeOther, "GET, PUT, DELETE")
	f("GET", "/v1/cluster/join", 405, "", routeOther, "POST")
	f("HEAD", "/v1/rdds/r1/keys/k", 200, "", "GET /v1/rdds/{name}/keys/{key}", "")
	f("GET", "/v1/rdds/r1/keys/nope", 404, "key_not_found", "GET /v1/rdds/{name}/keys/{key}", "")
	// A session that does not exist answers so on any path below it.
	f("GET", "/sessions/9", 404, "session_not_found", routeOther, "")
	f("GET", "/sessions/9/a/b/c/d/e", 404, "session_not_found", routeOther, "")
	f("GET", "/sessions/s1/state", 200, "", "GET /sessions/{id}/state", "")
	f("GET", "/sessions/1/statements/x", 400, "statement id must be a number", routeOther, "")
	f("GET", "/sessions/1/statements/x/cancel", 400, "statement id must be a number", routeOther, "")
	f("GET", "/sessions/1/statements/x/a/b", 404, "no_route", routeOther, "")
	f("GET", "/batches/x", 400, "batch id must be a non-negative number", routeOther, "")
	f("GET", "/batches/-1/state", 400, "batch id", routeOther, "")
	f("GET", "/batches/1/nope", 404, "no_route", routeOther, "")
}

// TestNodeOnlyPaths checks which requests count as node-to-node: with a
// cluster key set, they need it (403), whatever the method, under
// /internal/ and on the join path; removal only with DELETE.
func TestNodeOnlyPaths(t *testing.T) {
	s := New(Config{Store: fakeKV{}, Sessions: fakeSessions{}, Cluster: fakeCluster{},
		Registry: prometheus.NewRegistry(), ClusterKey: "k3y"})
	f := func(method, uri string, needsKey bool) {
		t.Helper()
		ctx, _ := fakeRequest(s, nil, "", method, uri, "")
		refused := ctx.Response.StatusCode() == 403 && strings.Contains(string(ctx.Response.Body()), "cluster key")
		if refused != needsKey {
			t.Errorf("%s %s: %d %s; node-only: %v", method, uri, ctx.Response.StatusCode(), ctx.Response.Body(), needsKey)
		}
	}
	f("GET", "/internal/v1/index", true)
	f("POST", "/internal/v1/index", true)
	f("GET", "/internal/nope", true)
	f("POST", "/v1/cluster/join", true)
	f("GET", "/v1/cluster/join", true)
	f("DELETE", "/v1/cluster/nodes/n2", true)
	f("GET", "/v1/cluster/nodes/n2", false)
	f("POST", "/v1/cluster/admit", false)
	f("GET", "/v1/cluster", false)
	// Batches are off without Config.Batches: 404, as any unknown path.
	if ctx, _ := fakeRequest(s, nil, "", "GET", "/batches", ""); ctx.Response.StatusCode() != 404 {
		t.Errorf("GET /batches without batches: %d", ctx.Response.StatusCode())
	}
}

// BenchmarkRouteKeyGet is the router's share of the hot path: a GET of
// one key through route (checks, path, auth off, owner lookup, dispatch)
// to the fake store.
func BenchmarkRouteKeyGet(b *testing.B) {
	s := New(Config{Store: fakeKV{}, Sessions: fakeSessions{}, Cluster: fakeCluster{}, Registry: prometheus.NewRegistry()})
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("GET")
	ctx.Request.SetRequestURI("/v1/rdds/r1/keys/k")
	ctx.Request.Header.SetHost("127.0.0.1")
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		if s.route(&ctx) != "GET /v1/rdds/{name}/keys/{key}" || ctx.Response.StatusCode() != 200 {
			b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}
