package sparkbridge

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/srdd/srdd/internal/testutil"
)

func startFakeMetered(t *testing.T, m *Metrics) *Interpreter {
	t.Helper()
	it, err := Start(Config{Python: os.Args[0], PythonPath: t.TempDir(), SessionID: 1,
		StartTimeout: 3 * time.Second, StopTimeout: 500 * time.Millisecond, Metrics: m, Env: helperEnv("")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := it.WaitReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	return it
}

// waitValue polls a metric until it has the wanted value (the exit
// counter moves on a goroutine that sees the process end).
func waitValue(t *testing.T, c prometheus.Collector, want float64) {
	t.Helper()
	err := testutil.Poll(5*time.Second, 10*time.Millisecond, func() (bool, error) { return promtest.ToFloat64(c) == want, nil })
	if err != nil {
		t.Fatalf("metric = %v, want %v", promtest.ToFloat64(c), want)
	}
}

func TestMetricsInFlightAndExits(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	it := startFakeMetered(t, m)
	done := make(chan error, 1)
	go func() { done <- it.Call(context.Background(), "sleep", map[string]any{"ms": 50}, nil) }()
	waitValue(t, m.inFlight, 1) // the sleeping call is pending
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitValue(t, m.inFlight, 0)
	it.Stop()
	waitValue(t, m.exits[true], 1)

	crashing := startFakeMetered(t, m)
	_ = crashing.Call(context.Background(), "crash", map[string]any{}, nil)
	<-crashing.Done()
	waitValue(t, m.exits[false], 1)
	crashing.Stop()
	if got := promtest.ToFloat64(m.exits[true]); got != 1 {
		t.Fatalf("a Stop after the crash counted as another stop: %v", got)
	}
	if got := promtest.ToFloat64(m.starts); got != 2 {
		t.Fatalf("starts = %v, want 2", got)
	}
}

func TestPinnedPySpark(t *testing.T) {
	if v := PinnedPySpark(); len(v) < 5 || v[1] != '.' {
		t.Fatalf("PinnedPySpark() = %q, want a version like 4.3.0", v)
	}
}
