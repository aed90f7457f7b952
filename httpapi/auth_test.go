package httpapi

import (
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestEveryRouteHasARule walks every route constant (metrics.go) and
// fails on any route without exactly one permission rule, or on a rule
// for a route that does not exist.
func TestEveryRouteHasARule(t *testing.T) {
	fs := token.NewFileSet()
	f, err := parser.ParseFile(fs, "metrics.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range vs.Names {
			if !strings.HasPrefix(name.Name, "route") || i >= len(vs.Values) {
				continue
			}
			lit, ok := vs.Values[i].(*ast.BasicLit)
			if !ok {
				continue
			}
			v, _ := strconv.Unquote(lit.Value)
			routes[v] = true
		}
		return true
	})
	if len(routes) < 30 {
		t.Fatalf("found only %d route constants; the walk is broken", len(routes))
	}
	inAll := map[string]bool{}
	for _, r := range allRoutes {
		inAll[r] = true
	}
	for r := range routes {
		if r == routeForwarded || r == routeOther {
			continue // not routes: labels of requests served elsewhere or refused
		}
		if _, ok := permissions[r]; !ok {
			t.Errorf("route %q has no permission rule", r)
		}
		if !inAll[r] {
			t.Errorf("route %q is not in allRoutes", r)
		}
	}
	for r := range permissions {
		if !routes[r] {
			t.Errorf("permission rule for unknown route %q", r)
		}
	}
}

func TestMediaType(t *testing.T) {
	f := func(method, path, ct, xrb, body string, want bool) {
		t.Helper()
		ctx := reqCtx(method, path)
		if ct != "" {
			ctx.Request.Header.SetContentType(ct)
		}
		if xrb != "" {
			ctx.Request.Header.Set("X-Requested-By", xrb)
		}
		ctx.Request.SetBodyString(body)
		if got := mediaTypeOK(ctx); got != want {
			t.Errorf("%s %s ct=%q xrb=%q body=%q: %v, want %v", method, path, ct, xrb, body, got, want)
		}
	}
	f("GET", "/v1/rdds", "", "", "", true)
	f("POST", "/sessions/0/statements", "text/plain", "", `{"code":"1"}`, false)
	f("POST", "/sessions/0/statements", "application/x-www-form-urlencoded", "", `{"code":"1"}`, false)
	f("POST", "/sessions/0/statements", "", "", "", false)
	f("POST", "/sessions/0/statements", "application/json", "", `{"code":"1"}`, true)
	f("POST", "/sessions/0/statements", "Application/JSON; charset=utf-8", "", `{}`, true)
	f("POST", "/sessions/0/statements", "text/plain", "sparkmagic", `{}`, true)
	f("PUT", "/v1/rdds/a/keys/b", "application/x-www-form-urlencoded", "", `"x"`, false)
	f("PUT", "/v1/rdds/a/keys/b", "application/json", "", `"x"`, true)
	f("DELETE", "/sessions/0", "", "", "", true)
	f("DELETE", "/sessions/0", "text/plain", "", "x", false)
	f("POST", "/internal/v1/apply", "application/msgpack", "", "\x01", true)
	f("POST", "/v1/rdds/a/set", "application/msgpack", "", "\x01", false)
}

func TestLoopbackHost(t *testing.T) {
	f := func(host string, want bool) {
		t.Helper()
		if got := loopbackHost([]byte(host)); got != want {
			t.Errorf("loopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
	f("127.0.0.1:8998", true)
	f("127.1.2.3", true)
	f("localhost", true)
	f("LOCALHOST:8998", true)
	f("[::1]:8998", true)
	f("::1", true)
	f("evil.example.com:8998", false)
	f("localhost.evil.example.com", false)
	f("10.0.0.1:8998", false)
	f("", false)
	for addr, want := range map[string]bool{"127.0.0.1:0": true, "localhost:8998": true, "[::1]:1": true,
		"0.0.0.0:8998": false, ":8998": false, "[::]:8998": false, "10.1.2.3:8998": false} {
		if got := IsLoopbackAddr(addr); got != want {
			t.Errorf("IsLoopbackAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestJSONProblemHidesGoTypes(t *testing.T) {
	var v struct {
		Name string `json:"name"`
	}
	err := json.Unmarshal([]byte(`{"name":5}`), &v)
	msg := jsonProblem(err)
	if strings.Contains(msg, "Go") || strings.Contains(msg, "struct") || !strings.Contains(msg, `"name"`) {
		t.Fatalf("message %q", msg)
	}
}

func TestInternalErrorsStayInTheLog(t *testing.T) {
	var ctx fasthttp.RequestCtx
	fail(&ctx, errors.New("cannot read /var/lib/srdd/raft.db: java.lang.IllegalStateException"))
	body := string(ctx.Response.Body())
	if ctx.Response.StatusCode() != 500 || strings.Contains(body, "/var/lib") || strings.Contains(body, "java.") {
		t.Fatalf("internal error answered %d %s", ctx.Response.StatusCode(), body)
	}
}
