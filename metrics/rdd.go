// Package metrics holds the node-wide pieces of srdd's Prometheus metrics
// that belong to no single layer: build info, the per-RDD cardinality rule,
// the bridge from Raft's go-metrics to Prometheus, and the checkpoint and
// recovery hooks (durability.go). Layers register their own metrics; the
// full list is in deploy/README.md ("Metrics").
package metrics

import "sync"

// OtherRDD is the rdd label value shared by every RDD past the limit.
const OtherRDD = "_other"

// DefaultMaxRDDs is how many RDDs get their own rdd label by default.
const DefaultMaxRDDs = 32

// RDDLabels is the cardinality rule for per-RDD series: the first Max RDD
// names this node admits (since it started) keep their own rdd label
// value; every later name is counted under OtherRDD. A name keeps its slot
// for the life of the process, even if the RDD is dropped, so a series
// never changes meaning. Callers admit only names of RDDs that exist (a
// request that succeeded, or an RDD an interpreter reported), so a client
// probing random names cannot use up the slots. Safe for concurrent use.
type RDDLabels struct {
	max   int
	mu    sync.RWMutex
	names map[string]struct{}
}

// NewRDDLabels returns the rule with max slots (0: DefaultMaxRDDs; a
// negative max puts every RDD under OtherRDD).
func NewRDDLabels(max int) *RDDLabels {
	if max == 0 {
		max = DefaultMaxRDDs
	}
	return &RDDLabels{max: max, names: map[string]struct{}{}}
}

// Label returns the rdd label value for name, admitting it if a slot is
// free.
func (l *RDDLabels) Label(name string) string {
	l.mu.RLock()
	_, ok := l.names[name]
	full := len(l.names) >= l.max
	l.mu.RUnlock()
	if ok {
		return name
	}
	if full {
		return OtherRDD
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.names[name]; ok {
		return name
	}
	if len(l.names) >= l.max {
		return OtherRDD
	}
	l.names[name] = struct{}{}
	return name
}

// Max returns the number of slots.
func (l *RDDLabels) Max() int { return l.max }
