package httpapi

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Route names are the metric label values; all are bound at start-up.
const (
	routeHealth        = "GET /healthz"
	routeMetrics       = "GET /metrics"
	routeCluster       = "GET /v1/cluster"
	routeRDDList       = "GET /v1/rdds"
	routeRDDCreate     = "POST /v1/rdds"
	routeRDDGet        = "GET /v1/rdds/{name}"
	routeRDDDrop       = "DELETE /v1/rdds/{name}"
	routeKeyGet        = "GET /v1/rdds/{name}/keys/{key}"
	routeKeyPut        = "PUT /v1/rdds/{name}/keys/{key}"
	routeKeyDelete     = "DELETE /v1/rdds/{name}/keys/{key}"
	routeBatchGet      = "POST /v1/rdds/{name}/get"
	routeBatchSet      = "POST /v1/rdds/{name}/set"
	routeBatchDelete   = "POST /v1/rdds/{name}/delete"
	routeRDDScan       = "GET /v1/rdds/{name}/scan"
	routeRDDCount      = "GET /v1/rdds/{name}/count"
	routeRDDLoad       = "POST /v1/rdds/{name}/load"
	routeRDDSave       = "POST /v1/rdds/{name}/save"
	routeRDDCheckpoint = "POST /v1/rdds/{name}/checkpoint"
	routeSessionList   = "GET /sessions"
	routeSessionNew    = "POST /sessions"
	routeSessionGet    = "GET /sessions/{id}"
	routeSessionDel    = "DELETE /sessions/{id}"
	routeSessionState  = "GET /sessions/{id}/state"
	routeSessionLog    = "GET /sessions/{id}/log"
	routeStmtList      = "GET /sessions/{id}/statements"
	routeStmtNew       = "POST /sessions/{id}/statements"
	routeStmtGet       = "GET /sessions/{id}/statements/{sid}"
	routeStmtCancel    = "POST /sessions/{id}/statements/{sid}/cancel"
	routeCompletion    = "POST /sessions/{id}/completion"
	routeVersion       = "GET /version"
	routeClusterJoin   = "POST /v1/cluster/join"
	routeClusterRemove = "DELETE /v1/cluster/nodes/{id}"
	routeInternalApply = "POST /internal/v1/apply"
	routeInternalIndex = "GET /internal/v1/index"
	routeForwarded     = "forwarded"
	routeOther         = "other"
)

var allRoutes = []string{routeHealth, routeMetrics, routeCluster, routeRDDList, routeRDDCreate,
	routeRDDGet, routeRDDDrop, routeKeyGet, routeKeyPut, routeKeyDelete, routeBatchGet,
	routeBatchSet, routeBatchDelete, routeRDDScan, routeRDDCount, routeRDDLoad, routeRDDSave, routeRDDCheckpoint, routeSessionList, routeSessionNew, routeSessionGet,
	routeSessionDel, routeSessionState, routeSessionLog, routeStmtList, routeStmtNew,
	routeStmtGet, routeStmtCancel, routeCompletion, routeVersion,
	routeClusterJoin, routeClusterRemove, routeInternalApply, routeInternalIndex, routeForwarded, routeOther}

var statusClasses = []string{"2xx", "3xx", "4xx", "5xx"}

type httpMetrics struct {
	latency  map[string]*[4]prometheus.Observer // route -> by status class
	inFlight prometheus.Gauge
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	hist := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "srdd_http_request_duration_seconds",
		Help:    "Latency of HTTP requests by route and status class.",
		Buckets: prometheus.ExponentialBuckets(0.00005, 2, 22), // 50µs .. ~105s
	}, []string{"route", "status"})
	inflight := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "srdd_http_requests_in_flight", Help: "HTTP requests being served.",
	})
	reg.MustRegister(hist, inflight)
	m := &httpMetrics{latency: map[string]*[4]prometheus.Observer{}, inFlight: inflight}
	for _, r := range allRoutes {
		var obs [4]prometheus.Observer
		for i, c := range statusClasses {
			obs[i] = hist.WithLabelValues(r, c)
		}
		m.latency[r] = &obs
	}
	return m
}

func (m *httpMetrics) observe(route string, status int, seconds float64) {
	obs, ok := m.latency[route]
	if !ok {
		obs = m.latency[routeOther]
	}
	i := status/100 - 2
	if i < 0 || i > 3 {
		i = 3
	}
	obs[i].Observe(seconds)
}
