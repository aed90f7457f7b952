package kvstore

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/srdd/srdd/cluster"
)

// TestReplicasWantedAndReported: the copies a create wants default from
// the mode and the registry's node count, a count out of 1..nodes is
// refused naming the limit and records nothing, and a listing reports
// the one copy that exists, under-replication and the risk of a durable
// RDD on node-local checkpoints once the cluster has 2 or more nodes.
func TestReplicasWantedAndReported(t *testing.T) {
	h := newDurableHarness(t, DurableConfig{}, nil) // checkpoints: a temp dir, node-local
	s, reg := h.s, h.reg
	ctx := context.Background()
	n := func(v int) *int { return &v }
	create := func(name, mode string, replicas *int) RDDInfo {
		t.Helper()
		info, err := s.Create(CreateRequest{Name: name, Mode: mode, Replicas: replicas})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		return info
	}
	wanted := func(name string) int {
		r, _ := reg.RDD(name)
		return r.Replicas
	}

	// One node: every default is 1, and 1 is the most a create may ask.
	d1, m1 := create("d1", "", nil), create("m1", cluster.ModeMemory, nil)
	if wanted("d1") != 1 || wanted("m1") != 1 {
		t.Fatalf("one node: recorded %d and %d copies, want 1 and 1", wanted("d1"), wanted("m1"))
	}
	for _, info := range []RDDInfo{d1, m1} {
		if info.Replicas != 1 || len(info.Copies) != 1 || info.Copies[0].Node != "n1" || info.Copies[0].Session != 1 ||
			info.UnderReplicated || info.AtRisk != "" {
			t.Fatalf("one node: %s described as %+v", info.Name, info)
		}
	}
	refused := func(name string, replicas int, limit string) {
		t.Helper()
		_, err := s.Create(CreateRequest{Name: name, Replicas: &replicas})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), limit) {
			t.Fatalf("replicas %d: %v, want ErrInvalid naming %q", replicas, err, limit)
		}
		if _, ok := reg.RDD(name); ok {
			t.Fatalf("replicas %d: a refused create recorded %s", replicas, name)
		}
	}
	refused("x", 2, "between 1 and 1 (the cluster's node count)")
	refused("x", 0, "between 1 and 1")

	// Three nodes, one of them down (it still counts; a removed one does not).
	reg.Update(func(st *cluster.State, _ *uint64) {
		st.Nodes["n2"] = &cluster.Member{ID: "n2", Status: cluster.NodeUp}
		st.Nodes["n3"] = &cluster.Member{ID: "n3", Status: cluster.NodeDown}
		st.Nodes["n4"] = &cluster.Member{ID: "n4", Status: cluster.NodeRemoved}
	})
	refused("x", 4, "between 1 and 3 (the cluster's node count)")
	refused("x", -1, "between 1 and 3")
	create("d2", cluster.ModeDurable, nil)
	create("m2", cluster.ModeMemory, nil)
	create("d3", cluster.ModeDurable, n(3))
	create("m3", cluster.ModeMemory, n(2))
	for name, want := range map[string]int{"d1": 1, "m1": 1, "d2": 2, "m2": 1, "d3": 3, "m3": 2} {
		if got := wanted(name); got != want {
			t.Errorf("%s recorded %d copies wanted, want %d", name, got, want)
		}
	}

	got := map[string]RDDInfo{}
	for _, info := range s.List(ctx) {
		got[info.Name] = info
	}
	for name, want := range map[string]struct {
		replicas int
		under    bool
		atRisk   string
	}{
		"d1": {1, false, AtRiskOneLocalCopy}, "m1": {1, false, ""},
		"d2": {2, true, AtRiskOneLocalCopy}, "m2": {1, false, ""},
		"d3": {3, true, AtRiskOneLocalCopy}, "m3": {2, true, ""},
	} {
		info := got[name]
		if info.Replicas != want.replicas || info.UnderReplicated != want.under || info.AtRisk != want.atRisk ||
			len(info.Copies) != 1 || info.Copies[0].Node != "n1" || info.Copies[0].Session != 1 {
			t.Errorf("%s described as replicas %d copies %+v under %v at_risk %q, want %+v",
				name, info.Replicas, info.Copies, info.UnderReplicated, info.AtRisk, want)
		}
	}
	// The owner's pusher runs here, so its copy shows the index it applied.
	if _, err := s.SetManyWith(ctx, "d2", []Item{{"a", []byte("1")}}, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	r, _ := reg.RDD("d2")
	if info, _ := s.Describe(ctx, "d2"); r.LastWrite == 0 || info.Copies[0].AppliedIndex != r.LastWrite {
		t.Errorf("d2's copy: %+v, want applied index %d (its last write)", info.Copies, r.LastWrite)
	}

	reg2 := prometheus.NewRegistry()
	s.Instrument(reg2)
	if v, err := testutil.GatherAndCount(reg2, "srdd_rdds_at_risk"); err != nil || v != 1 {
		t.Fatalf("srdd_rdds_at_risk series: %d, %v", v, err)
	}
	if v := testutil.ToFloat64(atRiskCollector{s}); v != 3 {
		t.Fatalf("srdd_rdds_at_risk = %v, want 3", v)
	}

	// A checkpoint on storage every node reaches takes d1 out of risk; a
	// dead owner's session holds no copy.
	reg.Update(func(st *cluster.State, _ *uint64) {
		st.RDDs["d1"].Checkpoint = &cluster.CheckpointRef{Index: 1, Path: "hdfs://nn/ck/d1/1"}
		st.Sessions[2] = &cluster.Session{ID: 2, Node: "n2", Status: cluster.SessionDead}
		st.RDDs["m2"].SessionID = 2
	})
	if info, _ := s.Describe(ctx, "d1"); info.AtRisk != "" {
		t.Errorf("d1 checkpointed to hdfs:// is at risk: %+v", info)
	}
	if info, _ := s.Describe(ctx, "m2"); len(info.Copies) != 0 || !info.UnderReplicated {
		t.Errorf("m2 in a dead session: copies %+v, under-replicated %v", info.Copies, info.UnderReplicated)
	}
	if v := testutil.ToFloat64(atRiskCollector{s}); v != 2 {
		t.Fatalf("srdd_rdds_at_risk = %v after d1's shared checkpoint, want 2", v)
	}
}

// TestNodeLocal is the rule for node-local checkpoint storage.
func TestNodeLocal(t *testing.T) {
	for uri, want := range map[string]bool{
		"/data/checkpoints": true, "/mnt/nfs/ck": true, "file:///srv/ck": true,
		"hdfs://nn:8020/ck": false, "s3a://bucket/ck": false, "gs://b/ck": false, "": false,
	} {
		if got := nodeLocal(uri); got != want {
			t.Errorf("nodeLocal(%q) = %v, want %v", uri, got, want)
		}
	}
}
