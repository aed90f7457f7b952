package sparkbridge

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/srdd/srdd/metrics"
)

// Ops is every op the node calls; metric label values are bound to these
// once at start-up.
var Ops = []string{"ping", "shutdown", "execute", "cancel", "rdd.create", "rdd.drop", "rdd.list", "kv.get", "kv.set", "kv.delete",
	"kv.scan", "kv.count", "rdd.load", "rdd.save", "progress", "complete", "stats"}

// Metrics are the bridge's Prometheus metrics, shared by all interpreters.
type Metrics struct {
	callSeconds map[string]prometheus.Observer
	callErrors  map[string]prometheus.Counter
	starts      prometheus.Counter
	startFails  prometheus.Counter
	readySecs   prometheus.Observer
	inFlight    prometheus.Gauge
	exits       map[bool]prometheus.Counter // by "asked to stop"
}

// NewMetrics registers the bridge metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	calls := prometheus.NewHistogramVec(metrics.WithNative(prometheus.HistogramOpts{
		Name:    "srdd_bridge_call_duration_seconds",
		Help:    "Latency of calls from the node to interpreters, by op.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 20), // 100µs .. ~52s
	}), []string{"op"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "srdd_bridge_call_errors_total",
		Help: "Calls to interpreters that returned an error, by op.",
	}, []string{"op"})
	starts := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "srdd_interpreter_starts_total", Help: "Interpreter processes started.",
	})
	fails := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "srdd_interpreter_start_failures_total", Help: "Interpreters that failed to start or to bring Spark up.",
	})
	ready := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "srdd_interpreter_ready_seconds",
		Help:    "Time from process start to Spark ready.",
		Buckets: prometheus.ExponentialBuckets(0.5, 2, 10),
	})
	inflight := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "srdd_bridge_calls_in_flight",
		Help: "Calls sent to interpreters and not answered yet (the bridge's queue depth).",
	})
	exits := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "srdd_interpreter_exits_total",
		Help: "Interpreter processes that ended, by cause: stopped (asked to) or crashed (on their own).",
	}, []string{"cause"})
	reg.MustRegister(calls, errs, starts, fails, ready, inflight, exits)
	m := &Metrics{
		callSeconds: map[string]prometheus.Observer{},
		callErrors:  map[string]prometheus.Counter{},
		starts:      starts, startFails: fails, readySecs: ready, inFlight: inflight,
		exits: map[bool]prometheus.Counter{true: exits.WithLabelValues("stopped"), false: exits.WithLabelValues("crashed")},
	}
	for _, op := range append(Ops, "other") {
		m.callSeconds[op] = calls.WithLabelValues(op)
		m.callErrors[op] = errs.WithLabelValues(op)
	}
	return m
}

func (m *Metrics) observe(op string, seconds float64, err error) {
	if m == nil {
		return
	}
	o, ok := m.callSeconds[op]
	if !ok {
		op = "other"
		o = m.callSeconds[op]
	}
	o.Observe(seconds)
	if err != nil {
		m.callErrors[op].Inc()
	}
}

// addInFlight counts calls sent (+1) and answered (-1).
func (m *Metrics) addInFlight(delta float64) {
	if m != nil {
		m.inFlight.Add(delta)
	}
}

func (m *Metrics) exited(stopping bool) {
	if m != nil {
		m.exits[stopping].Inc()
	}
}

func (m *Metrics) incStarts() {
	if m != nil {
		m.starts.Inc()
	}
}

func (m *Metrics) incStartFailures() {
	if m != nil {
		m.startFails.Inc()
	}
}

func (m *Metrics) observeReady(d interface{ Seconds() float64 }) {
	if m != nil {
		m.readySecs.Observe(d.Seconds())
	}
}
