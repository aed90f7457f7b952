package kvstore

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/srdd/srdd/cluster"
)

// Copies of shared RDDs (issue 24), as far as they are built: an RDD
// records how many copies it wants (cluster.RDD.Replicas), and the only
// copy that exists is the one in its owner's session. Nothing here makes
// a copy; it reports honestly what is there.

// AtRiskOneLocalCopy is RDDInfo.AtRisk of a durable RDD whose only copy
// checkpoints to node-local storage in a cluster of two or more nodes:
// losing the owner's machine with its disk loses every acknowledged
// write that a checkpoint trimmed from the replicated log.
const AtRiskOneLocalCopy = "one copy on node-local storage"

// copies lists the copies of r that exist: the owner's session while the
// registry has it active, with the log index it applied when this node
// runs its pusher. A dead owner's session holds nothing (a durable RDD
// is then recovering: its data is in checkpoints and the log, not in a
// copy).
func (s *Store) copies(r cluster.RDD) []Copy {
	rec, ok := s.reg.Session(r.SessionID)
	if !ok || rec.Status != cluster.SessionActive {
		return []Copy{}
	}
	c := Copy{Node: rec.Node, Session: r.SessionID}
	if r.Mode == cluster.ModeDurable {
		c.AppliedIndex, _ = s.dur.applied(r.Name, r.SessionID)
	}
	return []Copy{c}
}

// atRisk is RDDInfo.AtRisk for r with copies copies in a cluster of
// nodes nodes. Only durable RDDs are judged (a memory RDD is lost with
// its interpreter by design). The storage judged is where its last
// checkpoint is, or, before the first, where this node writes them.
func (s *Store) atRisk(r cluster.RDD, copies, nodes int) string {
	if r.Mode != cluster.ModeDurable || copies >= 2 || nodes < 2 {
		return ""
	}
	where := s.dur.cfg.CheckpointURI
	if r.Checkpoint != nil {
		where = r.Checkpoint.Path
	}
	if !nodeLocal(where) {
		return ""
	}
	return AtRiskOneLocalCopy
}

// nodeLocal reports whether checkpoints at uri are on storage of the
// node that writes them, as far as srdd can tell: a plain path (the
// default, DATA-DIR/checkpoints, is one) or a file: URI. srdd cannot
// tell a shared filesystem mounted at a path from a local disk, so it
// counts every path as node-local; hdfs://, s3a:// and other schemes
// name storage every node reaches. An empty uri (durable RDDs off on
// this node, no checkpoint yet) is not judged.
func nodeLocal(uri string) bool { return uri != "" && localPath(uri) != "" }

// applied is the log index the pusher of name in session sid has
// applied, if that pusher runs on this node.
func (d *durable) applied(name string, sid int64) (uint64, bool) {
	o, ok := d.lookup(name)
	if !ok || o.sid != sid {
		return 0, false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.applied, true
}

var atRiskDesc = prometheus.NewDesc("srdd_rdds_at_risk",
	"Shared RDDs whose acknowledged writes one lost machine would lose: durable, with one copy, on node-local checkpoints (a path or file: URI), in a cluster of 2 or more nodes (GET /v1/rdds at_risk). Cluster-wide, as this node's registry has it: every node reports the same count.",
	nil, nil)

// atRiskCollector counts the at-risk RDDs when scraped.
type atRiskCollector struct{ s *Store }

func (c atRiskCollector) Describe(ch chan<- *prometheus.Desc) { ch <- atRiskDesc }

func (c atRiskCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(atRiskDesc, prometheus.GaugeValue, float64(c.s.AtRisk()))
}

// AtRisk counts the shared RDDs reported at risk (RDDInfo.AtRisk).
func (s *Store) AtRisk() int {
	nodes, n := s.reg.NodeCount(), 0
	for _, r := range s.reg.RDDs() {
		if s.atRisk(r, len(s.copies(r)), nodes) != "" {
			n++
		}
	}
	return n
}
