package httpapi

import (
	"bytes"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/srdd/srdd/metrics"
	"github.com/valyala/fasthttp"
)

// allRoutes are the route label values, all bound at start-up: every
// row of the route table (routes.go), in its order, then forwarded and
// other.
func allRoutes() []string {
	out := make([]string, 0, len(routes)+2)
	for _, r := range routes {
		out = append(out, r.name)
	}
	return append(out, routeForwarded, routeOther)
}

var statusClasses = []string{"2xx", "3xx", "4xx", "5xx"}

// APIs are the label values of srdd_http_requests_in_flight: the part of
// the API a request is for, known from its path before routing.
const (
	apiRDDs     = "rdds"
	apiSessions = "sessions"
	apiCluster  = "cluster"
	apiOps      = "ops"
	apiOther    = "other"
)

var allAPIs = []string{apiRDDs, apiSessions, apiCluster, apiOps, apiOther}

type routeSeries struct {
	latency [4]prometheus.Observer // by status class
	rddOp   int                    // index into rddMetrics.requests, or -1
	rddKind int                    // index into rddMetrics.latency
}

// rddMetrics are one rdd label value's series, created once per label.
type rddMetrics struct {
	requests [][2]prometheus.Counter // by op index, then ok/error
	latency  []prometheus.Observer   // by kind index
}

type httpMetrics struct {
	routes   map[string]*routeSeries
	inFlight map[string]prometheus.Gauge // by API

	labels   *metrics.RDDLabels
	rddReqs  *prometheus.CounterVec
	rddLat   *prometheus.HistogramVec
	ops      []string                               // op names by index
	kinds    []string                               // kind names by index
	rddMu    sync.Mutex                             // serialises changes of the two maps
	rddByLbl map[string]*rddMetrics                 // by label value
	rddByRDD atomic.Pointer[map[string]*rddMetrics] // by RDD name, copied on write: reads take no lock
}

func newHTTPMetrics(reg prometheus.Registerer, labels *metrics.RDDLabels) *httpMetrics {
	if labels == nil {
		labels = metrics.NewRDDLabels(0)
	}
	hist := prometheus.NewHistogramVec(metrics.WithNative(prometheus.HistogramOpts{
		Name:    "srdd_http_request_duration_seconds",
		Help:    "Latency of HTTP requests by route and status class.",
		Buckets: prometheus.ExponentialBuckets(0.00005, 2, 22), // 50µs .. ~105s
	}), []string{"route", "status"})
	inflight := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "srdd_http_requests_in_flight", Help: "HTTP requests being served, by API (rdds, sessions, cluster, ops, other).",
	}, []string{"api"})
	rddReqs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "srdd_rdd_requests_total",
		Help: "Requests served for a shared RDD by this node (its owner), by op and result. rdd is bounded: see --metrics-max-rdds.",
	}, []string{"rdd", "op", "result"})
	rddLat := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "srdd_rdd_request_duration_seconds",
		Help:    "Latency of requests for a shared RDD served by this node, by kind (read, write, bulk). rdd is bounded: see --metrics-max-rdds.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10), // 100µs .. ~26s
	}, []string{"rdd", "kind"})
	reg.MustRegister(hist, inflight, rddReqs, rddLat)
	m := &httpMetrics{routes: map[string]*routeSeries{}, inFlight: map[string]prometheus.Gauge{},
		labels: labels, rddReqs: rddReqs, rddLat: rddLat,
		rddByLbl: map[string]*rddMetrics{}}
	m.rddByRDD.Store(&map[string]*rddMetrics{})
	for _, a := range allAPIs {
		m.inFlight[a] = inflight.WithLabelValues(a)
	}
	// The per-RDD operations (srdd_rdd_requests_total{op}) and the kind
	// of each (srdd_rdd_request_duration_seconds{kind}): route.op.
	opIndex, kindIndex := map[string]int{}, map[string]int{}
	for _, r := range routes { // a fixed order, so indexes are stable
		o := r.op
		if o.op == "" {
			continue
		}
		opIndex[o.op] = len(m.ops)
		m.ops = append(m.ops, o.op)
		if _, ok := kindIndex[o.kind]; !ok {
			kindIndex[o.kind] = len(m.kinds)
			m.kinds = append(m.kinds, o.kind)
		}
	}
	for _, name := range allRoutes() {
		rm := &routeSeries{rddOp: -1}
		for i, c := range statusClasses {
			rm.latency[i] = hist.WithLabelValues(name, c)
		}
		if r := routeByName[name]; r != nil && r.op.op != "" {
			rm.rddOp, rm.rddKind = opIndex[r.op.op], kindIndex[r.op.kind]
		}
		m.routes[name] = rm
	}
	return m
}

// apiOf classifies a request by its path, before routing.
func apiOf(path []byte) string {
	switch {
	case bytes.HasPrefix(path, []byte("/v1/rdds")):
		return apiRDDs
	case bytes.HasPrefix(path, []byte("/sessions")), bytes.HasPrefix(path, []byte("/batches")):
		return apiSessions
	case bytes.HasPrefix(path, []byte("/v1/cluster")), bytes.HasPrefix(path, []byte("/internal/")):
		return apiCluster
	case bytes.Equal(path, []byte("/metrics")), bytes.Equal(path, []byte("/healthz")),
		bytes.Equal(path, []byte("/readyz")), bytes.Equal(path, []byte("/version")):
		return apiOps
	}
	return apiOther
}

func (m *httpMetrics) observe(ctx *fasthttp.RequestCtx, route string, status int, seconds float64) {
	rm, ok := m.routes[route]
	if !ok {
		rm = m.routes[routeOther]
	}
	i := status/100 - 2
	if i < 0 || i > 3 {
		i = 3
	}
	rm.latency[i].Observe(seconds)
	if rm.rddOp >= 0 {
		if r := m.rdd(rddName(ctx.Path()), i == 0); r != nil {
			res := 0
			if i != 0 {
				res = 1
			}
			r.requests[rm.rddOp][res].Inc()
			r.latency[rm.rddKind].Observe(seconds)
		}
	}
}

// rddName returns the {name} segment of /v1/rdds/{name}/...
func rddName(path []byte) []byte {
	rest, ok := bytes.CutPrefix(path, []byte("/v1/rdds/"))
	if !ok {
		return nil
	}
	if i := bytes.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// rdd returns the series of the RDD named name. A name not seen before
// takes a label slot only when its request succeeded (the RDD exists);
// failed requests for unknown names count under rdd="_other".
func (m *httpMetrics) rdd(name []byte, ok bool) *rddMetrics {
	if r := (*m.rddByRDD.Load())[string(name)]; r != nil { // no allocation, no lock
		return r
	}
	label := metrics.OtherRDD
	if ok {
		label = m.labels.Label(string(name))
	}
	m.rddMu.Lock()
	defer m.rddMu.Unlock()
	r := m.rddByLbl[label]
	if r == nil {
		r = &rddMetrics{requests: make([][2]prometheus.Counter, len(m.ops)), latency: make([]prometheus.Observer, len(m.kinds))}
		for i, op := range m.ops {
			r.requests[i] = [2]prometheus.Counter{m.rddReqs.WithLabelValues(label, op, "ok"), m.rddReqs.WithLabelValues(label, op, "error")}
		}
		for i, k := range m.kinds {
			r.latency[i] = m.rddLat.WithLabelValues(label, k)
		}
		m.rddByLbl[label] = r
	}
	if old := *m.rddByRDD.Load(); ok && old[string(name)] == nil {
		// Remember names that exist; unknown names stay out of the map,
		// which so holds at most the admitted names plus the folded ones
		// that succeeded (each copy is O(names), done once per name).
		next := make(map[string]*rddMetrics, len(old)+1)
		for k, v := range old {
			next[k] = v
		}
		next[string(name)] = r
		m.rddByRDD.Store(&next)
	}
	return r
}
