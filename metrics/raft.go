package metrics

import (
	"fmt"
	"sync"

	gometrics "github.com/hashicorp/go-metrics/compat"
	gmprometheus "github.com/hashicorp/go-metrics/compat/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

var raftSink struct {
	once sync.Once
	c    prometheus.Collector
	err  error
}

// RaftSink returns the Prometheus collector that receives the metrics
// hashicorp/raft and raft-boltdb emit through go-metrics (srdd_raft_*:
// commitTime, fsm_apply, fsm_snapshot, state_leader, boltdb_*, ...).
//
// go-metrics is process-global, so the first call installs one sink for
// the whole process and every node registers that same collector: nodes
// started in one process (tests) share these series. The compat packages
// follow raft's own choice of go-metrics module (armon's unless built
// with the hashicorpmetrics tag). Timers are summaries in milliseconds;
// series never expire, so counters keep their totals while idle.
func RaftSink() (prometheus.Collector, error) {
	raftSink.once.Do(func() {
		sink, err := gmprometheus.NewPrometheusSinkFrom(gmprometheus.PrometheusOpts{
			Name:       "srdd_raft_sink",
			Registerer: prometheus.NewRegistry(), // nodes register it in their own registries
		})
		if err != nil {
			raftSink.err = fmt.Errorf("cannot create the go-metrics sink: %w", err)
			return
		}
		cfg := gometrics.DefaultConfig("srdd")
		cfg.EnableHostname = false
		cfg.EnableRuntimeMetrics = false // the Go collector covers the runtime
		if _, err := gometrics.NewGlobal(cfg, sink); err != nil {
			raftSink.err = fmt.Errorf("cannot install the go-metrics sink: %w", err)
			return
		}
		raftSink.c = sink
	})
	return raftSink.c, raftSink.err
}
