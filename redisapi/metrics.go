package redisapi

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// redisMetrics are the Redis port's series, bound once at start-up. Each
// data command's REST call is also counted under its REST route and RDD
// (srdd_http_request_duration_seconds, srdd_rdd_requests_total), as a
// REST client's would be.
type redisMetrics struct {
	latency map[string][2]prometheus.Observer // command -> ok, error
	conns   prometheus.Gauge
}

// otherCommand labels commands not in the table.
const otherCommand = "OTHER"

func newRedisMetrics(reg *prometheus.Registry) *redisMetrics {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "srdd_redis_command_duration_seconds",
		Help:    "Latency of commands on the Redis port, by command and result (ok or error).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	}, []string{"command", "result"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "srdd_redis_connections",
		Help: "Open connections to the Redis port.",
	})
	if reg != nil {
		reg.MustRegister(h, g)
	}
	m := &redisMetrics{latency: map[string][2]prometheus.Observer{}, conns: g}
	for name := range commands {
		m.bind(h, name)
	}
	m.bind(h, otherCommand)
	return m
}

// bind creates the series of command name (upper case, as the table
// keys it; labelled in lower case, as Redis names commands).
func (m *redisMetrics) bind(h *prometheus.HistogramVec, name string) {
	l := strings.ToLower(name)
	m.latency[name] = [2]prometheus.Observer{h.WithLabelValues(l, "ok"), h.WithLabelValues(l, "error")}
}

// observe records one command (name in upper case).
func (m *redisMetrics) observe(name string, known bool, result string, d time.Duration) {
	label := otherCommand
	if known {
		label = name
	}
	i := 0
	if result != "ok" {
		i = 1
	}
	m.latency[label][i].Observe(d.Seconds())
}

// observeN records n commands name served together in d.
func (m *redisMetrics) observeN(name string, n int, result string, d time.Duration) {
	for range n {
		m.observe(name, true, result, d)
	}
}
