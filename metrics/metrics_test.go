package metrics

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRDDLabelsBound(t *testing.T) {
	l := NewRDDLabels(2)
	f := func(name, want string) {
		t.Helper()
		if got := l.Label(name); got != want {
			t.Fatalf("Label(%q) = %q, want %q", name, got, want)
		}
	}
	f("a", "a")
	f("b", "b")
	f("c", OtherRDD) // full
	f("a", "a")      // keeps its slot
	f("b", "b")
	if NewRDDLabels(-1).Label("x") != OtherRDD {
		t.Fatal("a negative limit must fold every RDD")
	}
	if NewRDDLabels(0).Max() != DefaultMaxRDDs {
		t.Fatal("zero must mean the default")
	}
}

func TestRDDLabelsConcurrentNeverExceedsMax(t *testing.T) {
	l := NewRDDLabels(5)
	var wg sync.WaitGroup
	seen := sync.Map{}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				seen.Store(l.Label(string(rune('a'+(g*50+i)%26))), true)
			}
		}(g)
	}
	wg.Wait()
	n := 0
	seen.Range(func(k, _ any) bool {
		if k != OtherRDD {
			n++
		}
		return true
	})
	if n != 5 {
		t.Fatalf("%d names got their own label, want 5", n)
	}
}

func TestDurabilityHooks(t *testing.T) {
	reg := prometheus.NewRegistry()
	d := NewDurability(reg, NewRDDLabels(1))
	clock := time.Unix(1_000_000, 0)
	d.now = func() time.Time { return clock }

	d.Track("states", clock.Add(-90*time.Second))
	d.Track("late", clock.Add(-10*time.Second)) // past the limit: rdd="_other"
	d.SetLogTail("states", 7, 700)
	d.CheckpointDone("late", 2*time.Second, 10, errors.New("disk full"))
	d.RecoveryDone("states", 3*time.Second, 42, nil)
	d.InterpreterRestarted()

	want := `
# HELP srdd_checkpoint_age_seconds Seconds since the shared RDD's last good checkpoint (since it was tracked, if it has none).
# TYPE srdd_checkpoint_age_seconds gauge
srdd_checkpoint_age_seconds{rdd="_other"} 10
srdd_checkpoint_age_seconds{rdd="states"} 90
# HELP srdd_write_log_tail_entries Write-log entries since the shared RDD's last checkpoint (replayed by a recovery).
# TYPE srdd_write_log_tail_entries gauge
srdd_write_log_tail_entries{rdd="_other"} 0
srdd_write_log_tail_entries{rdd="states"} 7
# HELP srdd_checkpoints_total Checkpoint attempts, by result.
# TYPE srdd_checkpoints_total counter
srdd_checkpoints_total{result="error"} 1
srdd_checkpoints_total{result="ok"} 0
# HELP srdd_recovery_replayed_entries_total Write-log entries replayed by recoveries.
# TYPE srdd_recovery_replayed_entries_total counter
srdd_recovery_replayed_entries_total 42
# HELP srdd_interpreter_restarts_total Interpreters started to replace one that crashed.
# TYPE srdd_interpreter_restarts_total counter
srdd_interpreter_restarts_total 1
`
	names := []string{"srdd_checkpoint_age_seconds", "srdd_write_log_tail_entries", "srdd_checkpoints_total",
		"srdd_recovery_replayed_entries_total", "srdd_interpreter_restarts_total"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}

	// A good checkpoint resets the age and reports its time and size.
	clock = clock.Add(30 * time.Second)
	d.CheckpointDone("states", time.Second, 4096, nil)
	clock = clock.Add(5 * time.Second)
	want = `
# HELP srdd_checkpoint_age_seconds Seconds since the shared RDD's last good checkpoint (since it was tracked, if it has none).
# TYPE srdd_checkpoint_age_seconds gauge
srdd_checkpoint_age_seconds{rdd="_other"} 45
srdd_checkpoint_age_seconds{rdd="states"} 5
# HELP srdd_checkpoint_bytes Size of the shared RDD's last good checkpoint.
# TYPE srdd_checkpoint_bytes gauge
srdd_checkpoint_bytes{rdd="states"} 4096
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "srdd_checkpoint_age_seconds", "srdd_checkpoint_bytes"); err != nil {
		t.Fatal(err)
	}
	d.Forget("states")
	d.Forget("late")
	if n, err := testutil.GatherAndCount(reg, "srdd_checkpoint_age_seconds"); err != nil || n != 0 {
		t.Fatalf("forgotten RDDs still exported: %d series, %v", n, err)
	}
	var nilD *Durability // nil-safe: a node without metrics wiring
	nilD.CheckpointDone("x", time.Second, 1, nil)
	nilD.Track("x", clock)
}

func TestBuildInfo(t *testing.T) {
	reg := prometheus.NewRegistry()
	RegisterBuildInfo(reg, Build{Version: "v1.2.3", PySpark: "4.3.0"})
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 {
		t.Fatalf("gather: %v %v", mfs, err)
	}
	labels := map[string]string{}
	for _, lp := range mfs[0].Metric[0].Label {
		labels[lp.GetName()] = lp.GetValue()
	}
	if labels["version"] != "v1.2.3" || labels["pyspark"] != "4.3.0" || !strings.HasPrefix(labels["goversion"], "go1.") || labels["revision"] == "" {
		t.Fatalf("labels %v", labels)
	}
}
