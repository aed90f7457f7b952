package node

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/srdd/srdd/metrics"
	"github.com/srdd/srdd/sparkbridge"
)

// instrumentProcess registers what every node of this process exports
// before any layer starts: build info and Raft's go-metrics sink. It
// returns the per-RDD label rule the layers share.
func instrumentProcess(reg *prometheus.Registry, cfg Config) (*metrics.RDDLabels, error) {
	metrics.RegisterBuildInfo(reg, metrics.Build{Version: cfg.Version, PySpark: sparkbridge.PinnedPySpark()})
	sink, err := metrics.RaftSink()
	if err != nil {
		return nil, err
	}
	reg.MustRegister(sink)
	return metrics.NewRDDLabels(cfg.MetricsMaxRDDs), nil
}

// instrument registers the registry's and the sessions' metrics and the
// durability hooks, once those layers exist.
func (n *Node) instrument(labels *metrics.RDDLabels) {
	n.Registry.Instrument(n.Metrics)
	n.Sessions.Instrument(n.Metrics, labels)
	n.Durability = metrics.NewDurability(n.Metrics, labels)
}
