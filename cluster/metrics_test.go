package cluster

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func gatherValues(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			name := mf.GetName()
			for _, l := range m.Label {
				name += "/" + l.GetValue()
			}
			switch mf.GetType() {
			case dto.MetricType_GAUGE:
				out[name] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[name] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func TestRaftCollector(t *testing.T) {
	n := openTestNode(t, t.TempDir(), true)
	reg := prometheus.NewRegistry()
	n.Instrument(reg)
	if err := n.WaitForLeader(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Apply(Command{Type: CmdRegisterNode, Body: &RegisterNode{ID: "n1", RaftAddr: n.RaftAddr(), HTTPAddr: "127.0.0.1:1"}}); err != nil {
		t.Fatal(err)
	}
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	v := gatherValues(t, reg)
	for name, want := range map[string]float64{"srdd_raft_is_leader": 1, "srdd_raft_has_leader": 1,
		"srdd_cluster_node_up/n1": 1, "srdd_cluster_voters": 1, "srdd_raft_last_contact_seconds": 0} {
		if got, ok := v[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	for _, name := range []string{"srdd_raft_log_bytes", "srdd_raft_snapshot_bytes", "srdd_raft_commit_index", "srdd_raft_applied_index", "srdd_raft_term"} {
		if v[name] <= 0 {
			t.Errorf("%s = %v, want > 0", name, v[name])
		}
	}
	// A member marked down reads 0.
	if _, err := n.Apply(Command{Type: CmdSetNodeStatus, Body: &SetNodeStatus{ID: "n1", Status: NodeDown}}); err != nil {
		t.Fatal(err)
	}
	if got := gatherValues(t, reg)["srdd_cluster_node_up/n1"]; got != 0 {
		t.Errorf("node_up of a down member = %v", got)
	}
	if err := n.Close(); err != nil { // stops the boltdb metrics loop too
		t.Fatal(err)
	}
}
