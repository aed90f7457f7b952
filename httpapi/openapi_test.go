package httpapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/srdd/srdd/kvstore"
	"github.com/valyala/fasthttp"
)

// docRoutes lists the document's operations as "METHOD /path".
func docRoutes(t *testing.T, body []byte) map[string]map[string]any {
	t.Helper()
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("document is not JSON: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi = %q", doc.OpenAPI)
	}
	out := map[string]map[string]any{}
	for path, item := range doc.Paths {
		for method, op := range item {
			out[strings.ToUpper(method)+" "+path] = op
		}
	}
	return out
}

// TestOpenAPICoversEveryRoute fails on a route of the table missing
// from GET /openapi.json, or on an operation of the document that no
// route names, and checks each operation states its route's auth rule
// and answers documented errors.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	s := New(Config{Version: "test", Registry: prometheus.NewRegistry()})
	var ctx fasthttp.RequestCtx
	s.openAPI(&ctx)
	if ctx.Response.StatusCode() != 200 || string(ctx.Response.Header.ContentType()) != "application/json" {
		t.Fatalf("GET /openapi.json: %d %s", ctx.Response.StatusCode(), ctx.Response.Header.ContentType())
	}
	ops := docRoutes(t, ctx.Response.Body())
	for _, r := range routes {
		if _, ok := ops[r.name]; !ok {
			t.Errorf("route %q is missing from the OpenAPI document", r.name)
		}
	}
	for name, op := range ops {
		r := routeByName[name]
		if r == nil {
			t.Errorf("the document lists %q, which no route names", name)
			continue
		}
		if got, want := op["x-srdd-auth"], ruleName[r.rule]; got != want {
			t.Errorf("%s: x-srdd-auth = %v, want %q", name, got, want)
		}
		resp, _ := op["responses"].(map[string]any)
		for _, st := range []string{"400", "401", "403", "500"} {
			if _, ok := resp[st]; !ok {
				t.Errorf("%s: no %s response", name, st)
			}
		}
		_, public := op["security"]
		if public != (r.rule == rulePublic) {
			t.Errorf("%s: public in the document = %v, in the route table = %v", name, public, r.rule == rulePublic)
		}
	}
}

// TestOpenAPILimits checks the document states the node's own limits.
func TestOpenAPILimits(t *testing.T) {
	lim := kvstore.Limits{MaxKeyBytes: 77, MaxValueBytes: 999, MaxBatch: 33}
	b, err := OpenAPIDocument(lim, "x")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Limits struct {
			MaxKeyBytes     int    `json:"max_key_bytes"`
			MaxValueBytes   int    `json:"max_value_bytes"`
			MaxBatch        int    `json:"max_batch"`
			MaxRequestBytes int    `json:"max_request_bytes"`
			NamePattern     string `json:"rdd_name_pattern"`
		} `json:"x-srdd-limits"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if l := doc.Limits; l.MaxKeyBytes != 77 || l.MaxValueBytes != 999 || l.MaxBatch != 33 || l.MaxRequestBytes != MaxRequestBytes || l.NamePattern == "" {
		t.Fatalf("limits = %+v", doc.Limits)
	}
	ops := docRoutes(t, b)
	body := ops["POST /v1/rdds/{name}/get"]["requestBody"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
	if got := body["properties"].(map[string]any)["keys"].(map[string]any)["maxItems"]; got != float64(33) {
		t.Fatalf("batch get maxItems = %v", got)
	}
}

// TestUIFiles serves the embedded console with its CSP, and refuses
// names outside it.
func TestUIFiles(t *testing.T) {
	s := New(Config{Registry: prometheus.NewRegistry()})
	for _, name := range []string{"index.html", "console.js", "console.css"} {
		var ctx fasthttp.RequestCtx
		s.uiFile(&ctx, name)
		if ctx.Response.StatusCode() != 200 || len(ctx.Response.Body()) == 0 {
			t.Fatalf("%s: %d", name, ctx.Response.StatusCode())
		}
		if csp := string(ctx.Response.Header.Peek("Content-Security-Policy")); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
			t.Fatalf("%s: CSP %q", name, csp)
		}
	}
	for _, name := range []string{"../ui.go", "ui.go", ".hidden.js", "nope.js", "a/b.js", ""} {
		var ctx fasthttp.RequestCtx
		s.uiFile(&ctx, name)
		if ctx.Response.StatusCode() != 404 {
			t.Fatalf("%q: %d, want 404", name, ctx.Response.StatusCode())
		}
	}
	// Nothing on the pages loads from elsewhere.
	for _, name := range []string{"index.html", "console.js", "console.css"} {
		b, _ := uiFiles.ReadFile("ui/" + name)
		for _, bad := range []string{"http://", "https://", "//cdn", "innerHTML", "eval(", "style:", "style=", "<script>"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
	}
}
