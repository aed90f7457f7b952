package cluster

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// boltMetricsInterval is how often raft-boltdb emits its store metrics
// (srdd_raft_boltdb_*) into go-metrics.
const boltMetricsInterval = 10 * time.Second

// clusterMetrics are the registry's own series; Raft's internal metrics
// come through go-metrics (metrics.RaftSink).
type clusterMetrics struct {
	forward map[bool]prometheus.Observer // by ok
}

// forwarded records one write forwarded to the leader (nil-safe).
func (m *clusterMetrics) forwarded(took time.Duration, err error) {
	if m != nil {
		m.forward[err == nil].Observe(took.Seconds())
	}
}

// Instrument registers the registry's metrics with reg and starts
// raft-boltdb's metrics loop. Call it once, after Open.
func (n *Node) Instrument(reg prometheus.Registerer) {
	fwd := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "srdd_cluster_forward_duration_seconds",
		Help:    "Writes a follower forwarded to the leader: until the leader answered and this node applied the entry, by result.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5ms .. ~16s
	}, []string{"result"})
	reg.MustRegister(fwd, &raftCollector{n: n})
	n.metrics = &clusterMetrics{forward: map[bool]prometheus.Observer{
		true: fwd.WithLabelValues("ok"), false: fwd.WithLabelValues("error")}}

	ctx, cancel := context.WithCancel(context.Background())
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		<-n.stop
		cancel()
	}()
	go func() {
		defer n.wg.Done()
		n.store.RunMetrics(ctx, boltMetricsInterval)
	}()
}

var (
	descIsLeader  = prometheus.NewDesc("srdd_raft_is_leader", "1 if this node leads the Raft group.", nil, nil)
	descHasLeader = prometheus.NewDesc("srdd_raft_has_leader",
		"1 if this node knows a leader (0 means no quorum as far as this node can tell).", nil, nil)
	descTerm        = prometheus.NewDesc("srdd_raft_term", "Current Raft term.", nil, nil)
	descCommitIndex = prometheus.NewDesc("srdd_raft_commit_index", "Raft commit index.", nil, nil)
	descApplied     = prometheus.NewDesc("srdd_raft_applied_index", "Index of the last entry this node's FSM applied.", nil, nil)
	descLastIndex   = prometheus.NewDesc("srdd_raft_last_log_index", "Index of the last entry in this node's Raft log.", nil, nil)
	descLastContact = prometheus.NewDesc("srdd_raft_last_contact_seconds",
		"Seconds since this follower last heard from the leader (0 on the leader).", nil, nil)
	descNodeUp = prometheus.NewDesc("srdd_cluster_node_up",
		"Member health as the registry records it (the leader marks a node down after --down-after without heartbeats): 1 up, 0 down.",
		[]string{"node"}, nil)
	descVoters   = prometheus.NewDesc("srdd_cluster_voters", "Voters in the Raft configuration.", nil, nil)
	descLogBytes = prometheus.NewDesc("srdd_raft_log_bytes",
		"Size of this node's Raft log store on disk (raft.db; bolt reuses freed pages, so it grows but rarely shrinks).", nil, nil)
	descSnapBytes = prometheus.NewDesc("srdd_raft_snapshot_bytes", "Bytes of Raft snapshots kept on disk.", nil, nil)
	descHalted    = prometheus.NewDesc("srdd_registry_apply_halted",
		"1 while this node has stopped applying the registry log at an entry its binary cannot decode (docs/ARCHITECTURE.md invariant 10); the node is up but not ready until it runs a binary that knows the entry.", nil, nil)
	descHaltedAt = prometheus.NewDesc("srdd_registry_apply_halted_index", "Log index of the entry this node cannot decode (0 while it applies).", nil, nil)
)

// raftCollector reads Raft's state and the registry when scraped.
type raftCollector struct{ n *Node }

func (c *raftCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descIsLeader, descHasLeader, descTerm, descCommitIndex, descApplied,
		descLastIndex, descLastContact, descNodeUp, descVoters, descLogBytes, descSnapBytes, descHalted, descHaltedAt} {
		ch <- d
	}
}

func (c *raftCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descIsLeader, b2f(n.IsLeader()))
	h := n.Halted()
	gauge(descHalted, b2f(h != nil))
	if h != nil {
		gauge(descHaltedAt, float64(h.Index))
	} else {
		gauge(descHaltedAt, 0)
	}
	addr, _ := n.raft.LeaderWithID()
	gauge(descHasLeader, b2f(addr != ""))
	st := n.raft.Stats()
	for d, k := range map[*prometheus.Desc]string{descTerm: "term", descCommitIndex: "commit_index",
		descApplied: "applied_index", descLastIndex: "last_log_index"} {
		if v, err := strconv.ParseFloat(st[k], 64); err == nil {
			gauge(d, v)
		}
	}
	switch lc := st["last_contact"]; {
	case n.IsLeader():
		gauge(descLastContact, 0)
	case lc != "never":
		if d, err := time.ParseDuration(lc); err == nil {
			gauge(descLastContact, d.Seconds())
		}
	}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		voters := 0
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				voters++
			}
		}
		gauge(descVoters, float64(voters))
	}
	n.fsm.read(func(s *State) {
		for id, m := range s.Nodes {
			if m.Status != NodeRemoved {
				gauge(descNodeUp, b2f(m.Status != NodeDown), id)
			}
		}
	})
	dir := filepath.Join(n.cfg.DataDir, "raft")
	if fi, err := os.Stat(filepath.Join(dir, "raft.db")); err == nil {
		gauge(descLogBytes, float64(fi.Size()))
	}
	var snap int64
	_ = filepath.WalkDir(filepath.Join(dir, "snapshots"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				snap += fi.Size()
			}
		}
		return nil
	})
	gauge(descSnapBytes, float64(snap))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
