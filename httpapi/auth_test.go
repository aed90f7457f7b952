package httpapi

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// TestEveryRouteHasARule checks every row of the route table has
// exactly one permission rule, a handler and an OpenAPI operation, a
// name of its method and pattern, and a metric series; and that the
// flags the trust rules depend on sit where they must: only join and
// removal let a node call an admin route, only key reads and writes take
// a session's capability, every /internal/ route is node-to-node.
func TestEveryRouteHasARule(t *testing.T) {
	if len(routes) < 40 {
		t.Fatalf("the table has %d routes", len(routes))
	}
	m := newHTTPMetrics(prometheus.NewRegistry(), nil)
	var nodeMay, capability []string
	for _, r := range routes {
		if r.rule < rulePublic || r.rule > ruleCluster {
			t.Errorf("%s: no permission rule", r.name)
		}
		if r.serve == nil || r.doc == nil {
			t.Errorf("%s: no handler or no OpenAPI operation", r.name)
		}
		if r.name != r.method+" "+r.pattern || routeByName[r.name] != r {
			t.Errorf("route %q is not named by its method and pattern", r.name)
		}
		if _, ok := m.routes[r.name]; !ok {
			t.Errorf("%s: no metric series", r.name)
		}
		if r.nodeMay {
			nodeMay = append(nodeMay, r.name)
		}
		if r.capability {
			capability = append(capability, r.name)
		}
		if strings.HasPrefix(r.pattern, "/internal/") != (r.rule == ruleCluster) || (r.rule == ruleCluster && r.node != nodePath) {
			t.Errorf("%s: /internal/ routes, and they only, are node-to-node (ruleCluster, nodePath)", r.name)
		}
	}
	if got := strings.Join(livyPrefixes, ","); got != "/version,/sessions,/batches" {
		t.Errorf("Livy's paths (errors carry msg): %s", got)
	}
	if got, want := strings.Join(nodeMay, ","), "POST /v1/cluster/join,DELETE /v1/cluster/nodes/{id}"; got != want {
		t.Errorf("routes a node may call as admin: %s, want %s", got, want)
	}
	if got := strings.Join(capability, ","); got != "GET /v1/rdds/{name},GET /v1/rdds/{name}/keys/{key},PUT /v1/rdds/{name}/keys/{key},"+
		"DELETE /v1/rdds/{name}/keys/{key},POST /v1/rdds/{name}/get,POST /v1/rdds/{name}/set,POST /v1/rdds/{name}/delete,"+
		"GET /v1/rdds/{name}/scan,GET /v1/rdds/{name}/count" {
		t.Errorf("routes a session capability may call: %s", got)
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
