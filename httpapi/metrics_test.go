package httpapi

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/srdd/srdd/metrics"
	"github.com/valyala/fasthttp"
)

func reqCtx(method, uri string) *fasthttp.RequestCtx {
	ctx := &fasthttp.RequestCtx{}
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	return ctx
}

func TestAPIOf(t *testing.T) {
	f := func(path, want string) {
		t.Helper()
		if got := apiOf([]byte(path)); got != want {
			t.Fatalf("apiOf(%q) = %q, want %q", path, got, want)
		}
	}
	f("/v1/rdds/a/keys/b", apiRDDs)
	f("/sessions/1/statements", apiSessions)
	f("/v1/cluster/join", apiCluster)
	f("/internal/v1/apply", apiCluster)
	f("/metrics", apiOps)
	f("/metricsx", apiOther)
	f("/", apiOther)
}

func TestPerRDDMetricsAreBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newHTTPMetrics(reg, metrics.NewRDDLabels(2))
	m.observe(reqCtx("GET", "/v1/rdds/a/keys/k"), "GET /v1/rdds/{name}/keys/{key}", 200, 0.001)
	m.observe(reqCtx("PUT", "/v1/rdds/a/keys/k"), "PUT /v1/rdds/{name}/keys/{key}", 204, 0.002)
	m.observe(reqCtx("GET", "/v1/rdds/nope/keys/k"), "GET /v1/rdds/{name}/keys/{key}", 404, 0.001) // unknown name: no slot
	m.observe(reqCtx("POST", "/v1/rdds/b/get"), "POST /v1/rdds/{name}/get", 200, 0.001)
	m.observe(reqCtx("GET", "/v1/rdds/c/count"), "GET /v1/rdds/{name}/count", 200, 0.001) // past the limit
	m.observe(reqCtx("GET", "/v1/rdds/a/keys/k"), "GET /v1/rdds/{name}/keys/{key}", 503, 0.5)
	m.observe(reqCtx("GET", "/healthz"), "GET /healthz", 200, 0.001) // not per-RDD

	want := map[string]float64{
		`a get ok`: 1, `a put ok`: 1, `a get error`: 1, `_other get error`: 1, `b batch_get ok`: 1, `_other count ok`: 1,
	}
	for k, v := range want {
		p := strings.Fields(k)
		if got := testutil.ToFloat64(m.rddReqs.WithLabelValues(p[0], p[1], p[2])); got != v {
			t.Errorf("srdd_rdd_requests_total{%s} = %v, want %v", k, got, v)
		}
	}
	// 3 labels (a, b, _other) x 10 ops x 2 results, nothing for nope or c.
	if n := testutil.CollectAndCount(m.rddReqs); n != 3*10*2 {
		t.Fatalf("%d request series, want %d", n, 3*10*2)
	}
	if got := testutil.ToFloat64(m.rddReqs.WithLabelValues("nope", "get", "error")); got != 0 {
		t.Fatal("an unknown name got a series")
	}
	if n := testutil.CollectAndCount(m.rddLat); n != 3*3 {
		t.Fatalf("%d latency series, want 9 (3 labels x read/write/bulk)", n)
	}
}

// BenchmarkObserve is the cost of recording one request: the route's
// latency histogram (classic + native) and, for an RDD route, the per-RDD
// counter and histogram.
func BenchmarkObserve(b *testing.B) {
	m := newHTTPMetrics(prometheus.NewRegistry(), nil)
	for _, c := range []struct{ name, path, route string }{
		{"route", "/healthz", "GET /healthz"},
		{"rdd", "/v1/rdds/states/keys/ca", "GET /v1/rdds/{name}/keys/{key}"},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := reqCtx("GET", c.path)
			b.ReportAllocs()
			for b.Loop() {
				m.observe(ctx, c.route, 200, 0.0003)
			}
		})
	}
	b.Run("rdd-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			ctx := reqCtx("GET", "/v1/rdds/states/keys/ca")
			for pb.Next() {
				m.observe(ctx, "GET /v1/rdds/{name}/keys/{key}", 200, 0.0003)
			}
		})
	})
	b.Run("inflight", func(b *testing.B) {
		ctx := reqCtx("GET", "/v1/rdds/states/keys/ca")
		b.ReportAllocs()
		for b.Loop() {
			g := m.inFlight[apiOf(ctx.Path())]
			g.Inc()
			g.Dec()
		}
	})
}
