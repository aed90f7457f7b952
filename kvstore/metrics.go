package kvstore

import "github.com/prometheus/client_golang/prometheus"

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
	reg.MustRegister(reqs, keys)
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
