package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Durability holds the checkpoint and recovery metrics. The durability
// work (issue 6) calls these hooks; node.Node.Durability is the node's
// instance. Every method is nil-safe, cheap, and safe for concurrent use.
//
//	d.Track(rdd, since)                  a durable RDD is served here (created, recovered, moved in):
//	                                     its checkpoint age counts from since until its first checkpoint
//	d.CheckpointDone(rdd, took, n, err)  after every checkpoint attempt (n: bytes written)
//	d.SetLogTail(rdd, entries, bytes)    the write-log tail since the last checkpoint changed
//	d.RecoveryDone(rdd, took, n, err)    an RDD was rebuilt from checkpoint + tail (n: entries replayed)
//	d.InterpreterRestarted()             the owner replaced a crashed interpreter
//	d.Forget(rdd)                        the RDD was dropped or moved to another node
//
// Series (rdd labels follow RDDLabels; RDDs past the limit are folded
// into rdd="_other": the oldest age, the summed tails):
//
//	srdd_checkpoint_age_seconds{rdd}                    seconds since the last good checkpoint (or Track)
//	srdd_checkpoint_last_success_timestamp_seconds{rdd} unix time of the last good checkpoint
//	srdd_checkpoint_bytes{rdd}                          size of the last good checkpoint
//	srdd_checkpoint_duration_seconds{result}            histogram of checkpoint attempts
//	srdd_checkpoints_total{result}                      attempts, result="ok"|"error"
//	srdd_write_log_tail_entries{rdd}, srdd_write_log_tail_bytes{rdd}
//	srdd_recovery_duration_seconds{result}              histogram of rebuilds
//	srdd_recoveries_total{result}, srdd_recovery_replayed_entries_total
//	srdd_interpreter_restarts_total
type Durability struct {
	labels *RDDLabels
	now    func() time.Time

	ckptSeconds  map[bool]prometheus.Observer // by ok
	ckptTotal    map[bool]prometheus.Counter
	recSeconds   map[bool]prometheus.Observer
	recTotal     map[bool]prometheus.Counter
	recEntries   prometheus.Counter
	restarts     prometheus.Counter
	ageDesc      *prometheus.Desc
	lastDesc     *prometheus.Desc
	bytesDesc    *prometheus.Desc
	tailDesc     *prometheus.Desc
	tailByteDesc *prometheus.Desc

	mu   sync.Mutex
	rdds map[string]*rddDurability
}

type rddDurability struct {
	label     string    // rdd label value, fixed when first seen
	since     time.Time // Track time, until the first good checkpoint
	last      time.Time // last good checkpoint; zero if none
	lastBytes int64
	tail      int64
	tailBytes int64
}

// NewDurability registers the durability metrics with reg.
func NewDurability(reg prometheus.Registerer, labels *RDDLabels) *Durability {
	if labels == nil {
		labels = NewRDDLabels(0)
	}
	jobBuckets := prometheus.ExponentialBuckets(0.01, 2, 16) // 10ms .. ~5.5min
	ckpt, ckptN := byResult(jobBuckets,
		"srdd_checkpoint_duration_seconds", "Duration of checkpoint attempts, by result.",
		"srdd_checkpoints_total", "Checkpoint attempts, by result.")
	rec, recN := byResult(jobBuckets,
		"srdd_recovery_duration_seconds", "Time to rebuild a shared RDD from its checkpoint and write-log tail, by result.",
		"srdd_recoveries_total", "Rebuilds of shared RDDs from checkpoint and tail, by result.")
	entries := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "srdd_recovery_replayed_entries_total", Help: "Write-log entries replayed by recoveries.",
	})
	restarts := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "srdd_interpreter_restarts_total", Help: "Interpreters started to replace one that crashed.",
	})
	d := &Durability{
		labels: labels, now: time.Now,
		ckptSeconds: map[bool]prometheus.Observer{}, ckptTotal: map[bool]prometheus.Counter{},
		recSeconds: map[bool]prometheus.Observer{}, recTotal: map[bool]prometheus.Counter{},
		recEntries: entries, restarts: restarts,
		ageDesc: prometheus.NewDesc("srdd_checkpoint_age_seconds",
			"Seconds since the shared RDD's last good checkpoint (since it was tracked, if it has none).", []string{"rdd"}, nil),
		lastDesc: prometheus.NewDesc("srdd_checkpoint_last_success_timestamp_seconds",
			"Unix time of the shared RDD's last good checkpoint.", []string{"rdd"}, nil),
		bytesDesc: prometheus.NewDesc("srdd_checkpoint_bytes", "Size of the shared RDD's last good checkpoint.", []string{"rdd"}, nil),
		tailDesc: prometheus.NewDesc("srdd_write_log_tail_entries",
			"Write-log entries since the shared RDD's last checkpoint (replayed by a recovery).", []string{"rdd"}, nil),
		tailByteDesc: prometheus.NewDesc("srdd_write_log_tail_bytes",
			"Bytes of write-log entries since the shared RDD's last checkpoint.", []string{"rdd"}, nil),
		rdds: map[string]*rddDurability{},
	}
	for ok, r := range map[bool]string{true: "ok", false: "error"} {
		d.ckptSeconds[ok] = ckpt.WithLabelValues(r)
		d.ckptTotal[ok] = ckptN.WithLabelValues(r)
		d.recSeconds[ok] = rec.WithLabelValues(r)
		d.recTotal[ok] = recN.WithLabelValues(r)
	}
	reg.MustRegister(ckpt, ckptN, rec, recN, entries, restarts, d)
	return d
}

// byResult is the duration histogram and the counter of a job's attempts
// (checkpoints, recoveries), both labelled by result.
func byResult(buckets []float64, secsName, secsHelp, countName, countHelp string) (*prometheus.HistogramVec, *prometheus.CounterVec) {
	secs := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: secsName, Help: secsHelp, Buckets: buckets}, []string{"result"})
	count := prometheus.NewCounterVec(prometheus.CounterOpts{Name: countName, Help: countHelp}, []string{"result"})
	return secs, count
}

func (d *Durability) rdd(name string) *rddDurability {
	r, ok := d.rdds[name]
	if !ok {
		r = &rddDurability{label: d.labels.Label(name), since: d.now()}
		d.rdds[name] = r
	}
	return r
}

// Track starts the checkpoint age of a durable RDD served here at since.
func (d *Durability) Track(rdd string, since time.Time) {
	if d == nil {
		return
	}
	d.mu.Lock()
	d.rdd(rdd).since = since
	d.mu.Unlock()
}

// CheckpointDone records one checkpoint attempt of rdd that took took and
// wrote n bytes; err != nil means it failed (the age keeps growing).
func (d *Durability) CheckpointDone(rdd string, took time.Duration, n int64, err error) {
	if d == nil {
		return
	}
	if attempt(d.ckptSeconds, d.ckptTotal, took, err) {
		d.mu.Lock()
		r := d.rdd(rdd)
		r.last, r.lastBytes = d.now(), n
		d.mu.Unlock()
	}
}

// SetLogTail records the size of rdd's write-log tail since its last checkpoint.
func (d *Durability) SetLogTail(rdd string, entries, bytes int64) {
	if d == nil {
		return
	}
	d.mu.Lock()
	r := d.rdd(rdd)
	r.tail, r.tailBytes = entries, bytes
	d.mu.Unlock()
}

// RecoveryDone records one rebuild of an RDD that took took and replayed
// entries write-log entries; err != nil means it failed.
func (d *Durability) RecoveryDone(rdd string, took time.Duration, entries int64, err error) {
	if d == nil {
		return
	}
	if attempt(d.recSeconds, d.recTotal, took, err) {
		d.recEntries.Add(float64(entries))
	}
}

// attempt observes one checkpoint or recovery that took took, in the
// series of its outcome (by err == nil, which it returns).
func attempt(seconds map[bool]prometheus.Observer, total map[bool]prometheus.Counter, took time.Duration, err error) bool {
	ok := err == nil
	seconds[ok].Observe(took.Seconds())
	total[ok].Inc()
	return ok
}

// InterpreterRestarted counts an interpreter started to replace a crashed one.
func (d *Durability) InterpreterRestarted() {
	if d != nil {
		d.restarts.Inc()
	}
}

// Forget drops rdd's per-RDD series (dropped, or moved to another node).
func (d *Durability) Forget(rdd string) {
	if d == nil {
		return
	}
	d.mu.Lock()
	delete(d.rdds, rdd)
	d.mu.Unlock()
}

// Describe implements prometheus.Collector for the per-RDD series.
func (d *Durability) Describe(ch chan<- *prometheus.Desc) {
	for _, desc := range []*prometheus.Desc{d.ageDesc, d.lastDesc, d.bytesDesc, d.tailDesc, d.tailByteDesc} {
		ch <- desc
	}
}

// Collect implements prometheus.Collector: ages are computed at scrape time.
func (d *Durability) Collect(ch chan<- prometheus.Metric) {
	now := d.now()
	type agg struct {
		age, last, bytes float64
		hasLast          bool
		tail, tailBytes  int64
	}
	out := map[string]*agg{}
	d.mu.Lock()
	for _, r := range d.rdds {
		label := r.label
		a, ok := out[label]
		if !ok {
			a = &agg{}
			out[label] = a
		}
		from := r.since
		if !r.last.IsZero() {
			from = r.last
			if t := float64(r.last.UnixNano()) / 1e9; !a.hasLast || t < a.last {
				a.last, a.bytes, a.hasLast = t, float64(r.lastBytes), true
			}
		}
		if age := now.Sub(from).Seconds(); age > a.age {
			a.age = age
		}
		a.tail += r.tail
		a.tailBytes += r.tailBytes
	}
	d.mu.Unlock()
	for label, a := range out {
		ch <- prometheus.MustNewConstMetric(d.ageDesc, prometheus.GaugeValue, a.age, label)
		if a.hasLast {
			ch <- prometheus.MustNewConstMetric(d.lastDesc, prometheus.GaugeValue, a.last, label)
			ch <- prometheus.MustNewConstMetric(d.bytesDesc, prometheus.GaugeValue, a.bytes, label)
		}
		ch <- prometheus.MustNewConstMetric(d.tailDesc, prometheus.GaugeValue, float64(a.tail), label)
		ch <- prometheus.MustNewConstMetric(d.tailByteDesc, prometheus.GaugeValue, float64(a.tailBytes), label)
	}
}
