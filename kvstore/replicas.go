package kvstore

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/srdd/srdd/cluster"
)

// Copies of durable shared RDDs (cluster/copies.go; docs/ARCHITECTURE.md,
// "Copies"). A copy is a pusher (owned) on a node other than the owner's,
// in that node's default session: it applies the RDD's log from this
// node's registry like the owner's pusher does, checkpoints to this
// node's storage, and holds the tail for itself until it has. Reads may
// be served by it (readOp, copyGate). When the owner's session is lost,
// maybeAdopt promotes the best live copy with one registry command; its
// pusher goes on as the owner's, without a rebuild. claimCopies makes
// new copies until the RDD has as many as it wants.

// AtRiskOneLocalCopy is RDDInfo.AtRisk of a durable RDD whose only copy
// checkpoints to node-local storage in a cluster of two or more nodes:
// losing the owner's machine with its disk loses every acknowledged
// write that a checkpoint trimmed from the replicated log.
const AtRiskOneLocalCopy = "one copy on node-local storage"

// copies lists the copies of r that hold its data: the owner's session
// while the registry has it active, then the live copies'. The log index
// a copy applied is known where its pusher runs (this node).
func (s *Store) copies(r cluster.RDD) []Copy {
	out := []Copy{}
	if rec, ok := s.reg.Session(r.SessionID); ok && rec.Status == cluster.SessionActive {
		c := Copy{Node: rec.Node, Session: r.SessionID, Role: "owner"}
		if r.Mode == cluster.ModeDurable {
			c.AppliedIndex, _ = s.dur.applied(r.Name, r.SessionID)
			if r.Checkpoint != nil {
				c.CheckpointIndex = r.Checkpoint.Index
			}
		}
		out = append(out, c)
	}
	for _, cp := range r.Copies {
		rec, ok := s.reg.Session(cp.Session)
		if !ok || rec.Status != cluster.SessionActive {
			continue
		}
		c := Copy{Node: cp.Node, Session: cp.Session, Role: "copy"}
		c.AppliedIndex, _ = s.dur.applied(r.Name, cp.Session)
		if cp.Checkpoint != nil {
			c.CheckpointIndex = cp.Checkpoint.Index
		}
		out = append(out, c)
	}
	return out
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
