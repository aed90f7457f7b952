package sessions

import (
	"context"
	"maps"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/srdd/srdd/metrics"
	"github.com/srdd/srdd/sparkbridge"
)

// StatsTimeout bounds one interpreter's answer to the stats op during a
// scrape; a late interpreter's last answer is exported instead.
const StatsTimeout = time.Second

// statsMaxAge is how long one round of stats answers serves scrapes (two
// Prometheus servers scraping together ask the interpreters once).
const statsMaxAge = time.Second

var allStates = []string{StateStarting, StateIdle, StateBusy, StateShuttingDown, StateError, StateDead, StateKilled}

// engineStats is the interpreter's answer to the stats op (stats.py).
type engineStats struct {
	Buckets []float64 `msgpack:"buckets"`
	RSS     int64     `msgpack:"rss"`
	JVM     struct {
		HeapUsed      *int64 `msgpack:"heap_used"`
		HeapCommitted *int64 `msgpack:"heap_committed"`
		HeapMax       *int64 `msgpack:"heap_max"`
		RSS           *int64 `msgpack:"rss"`
	} `msgpack:"jvm"`
	Cache struct {
		Entries  int64 `msgpack:"entries"`
		Bytes    int64 `msgpack:"bytes"`
		MaxBytes int64 `msgpack:"max_bytes"`
		Hits     int64 `msgpack:"hits"`
		Misses   int64 `msgpack:"misses"`
	} `msgpack:"cache"`
	Pending int64      `msgpack:"pending"`
	RDDs    []rddStats `msgpack:"rdds"`
}

type rddStats struct {
	Name            string             `msgpack:"name"`
	Count           int64              `msgpack:"count"`
	Partitions      int64              `msgpack:"partitions"`
	BaseBytes       int64              `msgpack:"base_bytes"`
	Delta           int64              `msgpack:"delta"`
	Frozen          int64              `msgpack:"frozen"`
	DeltaBytes      int64              `msgpack:"delta_bytes"`
	Compacting      bool               `msgpack:"compacting"`
	Compactions     int64              `msgpack:"compactions"`
	RebuildFailures int64              `msgpack:"rebuild_failures"`
	LookupJobs      int64              `msgpack:"lookup_jobs"`
	LookupKeys      int64              `msgpack:"lookup_keys"`
	Jobs            map[string]jobHist `msgpack:"jobs"`
}

// jobHist holds per-bucket (not cumulative) counts; the last is +Inf.
type jobHist struct {
	Counts []uint64 `msgpack:"counts"`
	Sum    float64  `msgpack:"sum"`
	Count  uint64   `msgpack:"count"`
}

func (h *jobHist) add(o jobHist) {
	if len(h.Counts) < len(o.Counts) {
		h.Counts = append(h.Counts, make([]uint64, len(o.Counts)-len(h.Counts))...)
	}
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.Sum += o.Sum
	h.Count += o.Count
}

type sessionStats struct {
	stats engineStats
	at    time.Time
}

// collector exports the sessions' states and what their interpreters say
// about themselves (stats op), polled when Prometheus scrapes.
type collector struct {
	m      *Manager
	labels *metrics.RDDLabels

	pollMu   sync.Mutex // one poll at a time; guards the fields below
	polledAt time.Time
	last     map[int64]*sessionStats
	errors   prometheus.Counter

	states, spark                                    *prometheus.Desc
	rss, jvmRSS, heapUsed, heapCommitted, heapMax    *prometheus.Desc
	pending, statsAge                                *prometheus.Desc
	cacheHits, cacheMisses, cacheBytes, cacheMax     *prometheus.Desc
	keys, parts, baseBytes, delta, deltaBytes        *prometheus.Desc
	compacting, compactions, compactFails, lookupKey *prometheus.Desc
	lookupHist, compactHist                          *prometheus.Desc
}

// Instrument registers the session and interpreter metrics with reg. Per
// session series carry session="<id>" for live sessions only; per-RDD
// series follow labels (metrics.RDDLabels).
func (m *Manager) Instrument(reg prometheus.Registerer, labels *metrics.RDDLabels) {
	if labels == nil {
		labels = metrics.NewRDDLabels(0)
	}
	d := func(name, help string, l ...string) *prometheus.Desc { return prometheus.NewDesc(name, help, l, nil) }
	c := &collector{m: m, labels: labels, last: map[int64]*sessionStats{},
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "srdd_interpreter_stats_errors_total",
			Help: "Stats polls of an interpreter that failed or timed out (its last answer was exported).",
		}),
		states: d("srdd_sessions", "Sessions on this node, by state.", "state"),
		spark:  d("srdd_spark_info", "Sessions on this node by the Spark version and master their interpreter reported.", "version", "master"),

		rss:           d("srdd_interpreter_rss_bytes", "Resident memory of the interpreter (Python driver) process.", "session"),
		jvmRSS:        d("srdd_interpreter_jvm_rss_bytes", "Resident memory of the interpreter's driver JVM.", "session"),
		heapUsed:      d("srdd_interpreter_jvm_heap_used_bytes", "Heap in use in the interpreter's driver JVM.", "session"),
		heapCommitted: d("srdd_interpreter_jvm_heap_committed_bytes", "Heap committed by the interpreter's driver JVM.", "session"),
		heapMax:       d("srdd_interpreter_jvm_heap_max_bytes", "Maximum heap of the interpreter's driver JVM.", "session"),
		pending:       d("srdd_interpreter_pending_ops", "Ops queued in the interpreter for a worker thread.", "session"),
		statsAge:      d("srdd_interpreter_stats_age_seconds", "Age of the interpreter stats exported (grows while it does not answer).", "session"),
		cacheHits:     d("srdd_engine_cache_hits_total", "Hot-key cache hits in the interpreter.", "session"),
		cacheMisses:   d("srdd_engine_cache_misses_total", "Hot-key cache misses in the interpreter.", "session"),
		cacheBytes:    d("srdd_engine_cache_bytes", "Estimated bytes held by the interpreter's hot-key cache.", "session"),
		cacheMax:      d("srdd_engine_cache_max_bytes", "Size limit of the interpreter's hot-key cache.", "session"),

		keys:         d("srdd_rdd_keys", "Keys in the shared RDD.", "rdd"),
		parts:        d("srdd_rdd_partitions", "Partitions of the shared RDD's base.", "rdd"),
		baseBytes:    d("srdd_rdd_base_bytes", "Bytes of the shared RDD's base in Spark.", "rdd"),
		delta:        d("srdd_rdd_delta_entries", "Writes in the shared RDD's driver-side delta (including one being compacted).", "rdd"),
		deltaBytes:   d("srdd_rdd_delta_bytes", "Bytes of the shared RDD's driver-side delta.", "rdd"),
		compacting:   d("srdd_rdd_compacting", "1 while a compaction of the shared RDD runs.", "rdd"),
		compactions:  d("srdd_engine_compactions_total", "Compactions of the delta into a new base.", "rdd"),
		compactFails: d("srdd_engine_compaction_failures_total", "Compactions that failed (the writes stay in the delta).", "rdd"),
		lookupKey:    d("srdd_engine_lookup_keys_total", "Keys fetched by lookup jobs.", "rdd"),
		lookupHist:   d("srdd_engine_lookup_job_duration_seconds", "Duration of Spark lookup jobs (cold reads).", "rdd"),
		compactHist:  d("srdd_engine_compaction_duration_seconds", "Duration of compactions (Spark rebuild jobs).", "rdd"),
	}
	reg.MustRegister(c, c.errors, prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "srdd_session_start_failures_total",
		Help: "Sessions of this node whose interpreter failed to start (the node's default session then backs off; alert SrddSessionStartsFailing).",
	}, func() float64 { return float64(m.StartFailures()) }))
}

func (c *collector) descs() []*prometheus.Desc {
	return []*prometheus.Desc{c.states, c.spark, c.rss, c.jvmRSS, c.heapUsed, c.heapCommitted, c.heapMax,
		c.pending, c.statsAge, c.cacheHits, c.cacheMisses, c.cacheBytes, c.cacheMax,
		c.keys, c.parts, c.baseBytes, c.delta, c.deltaBytes, c.compacting, c.compactions, c.compactFails,
		c.lookupKey, c.lookupHist, c.compactHist}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs() {
		ch <- d
	}
}

type liveSession struct {
	id    int64
	state string
	it    *sparkbridge.Interpreter
	ready bool
}

func (c *collector) snapshot() []liveSession {
	c.m.mu.Lock()
	all := slices.Collect(maps.Values(c.m.live))
	c.m.mu.Unlock()
	out := make([]liveSession, 0, len(all))
	for _, s := range all {
		s.mu.Lock()
		ls := liveSession{id: s.id, state: s.state, it: s.it}
		ls.ready = s.hydrated && s.startErr == nil && s.state != StateDead && s.state != StateShuttingDown
		s.mu.Unlock()
		out = append(out, ls)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// poll asks every ready interpreter for its stats (in parallel, each
// within StatsTimeout) unless the last round is fresh enough, and returns
// the latest answer of every live session.
func (c *collector) poll(live []liveSession) map[int64]*sessionStats {
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	if time.Since(c.polledAt) >= statsMaxAge {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, s := range live {
			if !s.ready || s.it == nil {
				continue
			}
			wg.Add(1)
			go func(s liveSession) {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), StatsTimeout)
				defer cancel()
				var st engineStats
				if err := s.it.Call(ctx, "stats", map[string]any{}, &st); err != nil {
					c.errors.Inc()
					return
				}
				mu.Lock()
				c.last[s.id] = &sessionStats{stats: st, at: time.Now()}
				mu.Unlock()
			}(s)
		}
		wg.Wait()
		c.polledAt = time.Now()
	}
	keep := map[int64]bool{}
	for _, s := range live {
		keep[s.id] = true
	}
	out := map[int64]*sessionStats{}
	for id, st := range c.last {
		if !keep[id] {
			delete(c.last, id) // the session is gone
			continue
		}
		out[id] = st
	}
	return out
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	live := c.snapshot()
	counts := map[string]float64{}
	type sparkKey struct{ version, master string }
	sparks := map[sparkKey]float64{}
	for _, s := range live {
		counts[s.state]++
		if s.ready && s.it != nil {
			select {
			case <-s.it.Ready():
				info, err := s.it.WaitReady(context.Background())
				if err == nil {
					sparks[sparkKey{info.SparkVersion, info.Master}]++
				}
			default:
			}
		}
	}
	for _, st := range allStates {
		ch <- prometheus.MustNewConstMetric(c.states, prometheus.GaugeValue, counts[st], st)
	}
	for k, n := range sparks {
		ch <- prometheus.MustNewConstMetric(c.spark, prometheus.GaugeValue, n, k.version, k.master)
	}

	stats := c.poll(live)
	gauge := func(d *prometheus.Desc, v float64, l string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l)
	}
	counter := func(d *prometheus.Desc, v float64, l string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l)
	}
	type rddAgg struct {
		s          rddStats
		compacting float64
		lookup     jobHist
		compact    jobHist
	}
	rdds := map[string]*rddAgg{}
	var buckets []float64
	now := time.Now()
	for id, ss := range stats {
		sid := strconv.FormatInt(id, 10)
		st := &ss.stats
		gauge(c.statsAge, now.Sub(ss.at).Seconds(), sid)
		gauge(c.rss, float64(st.RSS), sid)
		for d, v := range map[*prometheus.Desc]*int64{c.jvmRSS: st.JVM.RSS, c.heapUsed: st.JVM.HeapUsed,
			c.heapCommitted: st.JVM.HeapCommitted, c.heapMax: st.JVM.HeapMax} {
			if v != nil {
				gauge(d, float64(*v), sid)
			}
		}
		gauge(c.pending, float64(st.Pending), sid)
		counter(c.cacheHits, float64(st.Cache.Hits), sid)
		counter(c.cacheMisses, float64(st.Cache.Misses), sid)
		gauge(c.cacheBytes, float64(st.Cache.Bytes), sid)
		gauge(c.cacheMax, float64(st.Cache.MaxBytes), sid)
		if len(st.Buckets) > 0 {
			buckets = st.Buckets
		}
		for _, r := range st.RDDs {
			label := c.labels.Label(r.Name)
			a, ok := rdds[label]
			if !ok {
				a = &rddAgg{}
				rdds[label] = a
			}
			a.s.Count += r.Count
			a.s.Partitions += r.Partitions
			a.s.BaseBytes += r.BaseBytes
			a.s.Delta += r.Delta + r.Frozen
			a.s.DeltaBytes += r.DeltaBytes
			if r.Compacting {
				a.compacting++
			}
			a.s.Compactions += r.Compactions
			a.s.RebuildFailures += r.RebuildFailures
			a.s.LookupKeys += r.LookupKeys
			a.lookup.add(r.Jobs["lookup"])
			a.compact.add(r.Jobs["compaction"])
		}
	}
	for label, a := range rdds {
		gauge(c.keys, float64(a.s.Count), label)
		gauge(c.parts, float64(a.s.Partitions), label)
		gauge(c.baseBytes, float64(a.s.BaseBytes), label)
		gauge(c.delta, float64(a.s.Delta), label)
		gauge(c.deltaBytes, float64(a.s.DeltaBytes), label)
		gauge(c.compacting, a.compacting, label)
		counter(c.compactions, float64(a.s.Compactions), label)
		counter(c.compactFails, float64(a.s.RebuildFailures), label)
		counter(c.lookupKey, float64(a.s.LookupKeys), label)
		if m, ok := constHistogram(c.lookupHist, buckets, a.lookup, label); ok {
			ch <- m
		}
		if m, ok := constHistogram(c.compactHist, buckets, a.compact, label); ok {
			ch <- m
		}
	}
}

// constHistogram turns per-bucket counts into a Prometheus histogram
// (cumulative buckets; the last count, +Inf, is implied by the total).
func constHistogram(d *prometheus.Desc, bounds []float64, h jobHist, label string) (prometheus.Metric, bool) {
	if len(h.Counts) != len(bounds)+1 {
		return nil, false // no answer with buckets yet, or a mismatch
	}
	cum := make(map[float64]uint64, len(bounds))
	var run uint64
	for i, b := range bounds {
		run += h.Counts[i]
		cum[b] = run
	}
	m, err := prometheus.NewConstHistogram(d, h.Count, h.Sum, cum, label)
	return m, err == nil
}
