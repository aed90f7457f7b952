package kvstore

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics shows how well calls coalesce: requests and keys per bridge call.
type metrics struct {
	requests map[string]prometheus.Observer
	keys     map[string]prometheus.Observer
}

// Instrument registers the store's metrics with reg. Call it once, before
// serving; a store that is not instrumented records nothing.
func (s *Store) Instrument(reg prometheus.Registerer) {
	reqs := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "srdd_kv_batch_requests",
		Help:    "Client requests coalesced into one interpreter call, by op.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 12), // 1 .. 2048
	}, []string{"op"})
	keys := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "srdd_kv_batch_keys",
		Help:    "Keys in one interpreter call, by op.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 15), // 1 .. 16384
	}, []string{"op"})
	reg.MustRegister(reqs, keys, queueCollector{s}, atRiskCollector{s})
	m := &metrics{requests: map[string]prometheus.Observer{}, keys: map[string]prometheus.Observer{}}
	for _, op := range []string{"get", "get_cold", "set", "delete"} {
		m.requests[op] = reqs.WithLabelValues(op)
		m.keys[op] = keys.WithLabelValues(op)
	}
	s.metrics = m
}

func (m *metrics) hook(op string) func(items, n int) {
	if m == nil {
		return nil
	}
	r, k := m.requests[op], m.keys[op]
	return func(items, n int) {
		r.Observe(float64(items))
		k.Observe(float64(n))
	}
}

func (m *metrics) bind(b *batchers) {
	b.hot.onBatch = m.hook("get")
	b.cold.onBatch = m.hook("get_cold")
	b.sets.onBatch = m.hook("set")
	b.dels.onBatch = m.hook("delete")
}

var queueDepthDesc = prometheus.NewDesc("srdd_kv_queue_depth",
	"Requests waiting in this node's coalescing queues for an interpreter call, by op (summed over RDDs).",
	[]string{"op"}, nil)

// queueCollector reads the coalescers' queue lengths when scraped.
type queueCollector struct{ s *Store }

func (q queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- queueDepthDesc }

func (q queueCollector) Collect(ch chan<- prometheus.Metric) {
	var hot, cold, sets, dels int
	q.s.batch.Range(func(_, v any) bool {
		b := v.(*batchers)
		hot += b.hot.depth()
		cold += b.cold.depth()
		sets += b.sets.depth()
		dels += b.dels.depth()
		return true
	})
	for op, n := range map[string]int{"get": hot, "get_cold": cold, "set": sets, "delete": dels} {
		ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(n), op)
	}
}

// depth returns how many items wait for a call.
func (c *coalescer[T]) depth() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}
