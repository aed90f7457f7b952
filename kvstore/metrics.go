package kvstore

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics shows how well calls coalesce: requests and keys per bridge call.
type metrics struct {
	requests map[string]prometheus.Observer
	keys     map[string]prometheus.Observer
	// durable RDDs
	recovery   prometheus.Observer
	checkpoint prometheus.Observer
	ckptAt     *prometheus.GaugeVec // bounded: one series per durable RDD this node owns
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
	recovery := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "srdd_durable_recovery_seconds",
		Help:    "Time to rebuild a durable RDD on its owner from checkpoint and log.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 16), // 10 ms .. 5.5 min
	})
	ckpt := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "srdd_durable_checkpoint_seconds",
		Help:    "Time to write and record one checkpoint of a durable RDD.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
	})
	ckptAt := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "srdd_durable_checkpoint_timestamp_seconds",
		Help: "Unix time of the last checkpoint this node wrote, per durable RDD it owns.",
	}, []string{"rdd"})
	reg.MustRegister(reqs, keys, recovery, ckpt, ckptAt)
	m := &metrics{requests: map[string]prometheus.Observer{}, keys: map[string]prometheus.Observer{},
		recovery: recovery, checkpoint: ckpt, ckptAt: ckptAt}
	for _, op := range []string{"get", "get_cold", "set", "delete"} {
		m.requests[op] = reqs.WithLabelValues(op)
		m.keys[op] = keys.WithLabelValues(op)
	}
	s.metrics = m
}

func (m *metrics) observeRecovery(d time.Duration) {
	if m != nil {
		m.recovery.Observe(d.Seconds())
	}
}

func (m *metrics) observeCheckpoint(rdd string, d time.Duration) {
	if m != nil {
		m.checkpoint.Observe(d.Seconds())
		m.ckptAt.WithLabelValues(rdd).Set(float64(time.Now().Unix()))
	}
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
