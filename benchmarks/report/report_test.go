package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/srdd/srdd/benchmarks/loadgen"
)

func run(scenario, target string, opsPerSec, p50, p99 float64) loadgen.Result {
	return loadgen.Result{Scenario: scenario, Target: target, OpsPerSec: opsPerSec, KeysPerSec: opsPerSec,
		Latency: loadgen.Summary{P50: p50, P99: p99}, Config: loadgen.Config{Concurrency: 8, Keys: 100},
		CDF: []loadgen.Point{{LatencyMs: p50, Fraction: 0.5}, {LatencyMs: p99, Fraction: 1}}}
}

func sample() *Results {
	return &Results{
		Machine: Machine{CPU: "test", Cores: 2, MemoryGiB: 24},
		Runs: []loadgen.Result{
			run("noop-c64", "noop", 100_000, 0.5, 2),
			run("get-cached-c8", "srdd", 20_000, 0.4, 1),
			run("get-cached-c64", "srdd", 40_000, 1.5, 12), // p99 misses
			run("set-c8", "srdd", 15_000, 0.6, 2),
			run("set-c64", "srdd", 40_000, 1.6, 5),
			run("seed-get-1000-c8", "seed", 2, 3000, 5000),
			run("get-1000-c8", "srdd", 30_000, 0.3, 1),
		},
		Loads:  []Load{{Label: "1M jsonl", Rows: 1_000_000, Seconds: 8, RowsPerSec: 125_000}},
		Memory: []Memory{{Label: "after 1M sets", DriverMB: 200, JVMMB: 300, RawMB: 100, Keys: 1_000_000}},
		Redis: []RedisBench{{Test: "GET", Clients: 64, RPS: 100_000},
			{Target: "redis-server", Test: "GET", Clients: 64, RPS: 80_000},
			{Target: "srdd", Mode: "memory", Test: "GET", Clients: 64, RPS: 44_000}, // 55%
			{Target: "redis-server", Test: "GET", Clients: 64, Pipeline: 16, RPS: 800_000},
			{Target: "srdd", Mode: "memory", Test: "GET", Clients: 64, Pipeline: 16, RPS: 160_000}, // 20%
			{Target: "srdd", Mode: "durable", Test: "GET", Clients: 64, Pipeline: 16, RPS: 150_000}},

		Curve: []CurvePoint{{Target: "seed", Keys: 10, P50Ms: 100}, {Target: "seed", Keys: 1000, P50Ms: 3000}, {Target: "srdd", Keys: 10, P50Ms: 0.2}},
	}
}

func TestTargets(t *testing.T) {
	got := map[string]Target{}
	for _, tg := range sample().Targets() {
		got[tg.Name] = tg
	}
	f := func(name string, want *bool) {
		t.Helper()
		tg, ok := got[name]
		if !ok {
			t.Fatalf("no target %q", name)
		}
		if (tg.Met == nil) != (want == nil) || (want != nil && *tg.Met != *want) {
			t.Fatalf("%s: met %v, want %v (%s)", name, tg.Met, want, tg.Measured)
		}
	}
	yes, no := true, false
	f("cached get, 8 clients", &yes)
	f("cached get, 64 clients", &no) // 40% of no-op and p99 12 ms
	f("set, 64 clients", &yes)       // 40% >= 35%
	f("cold get, 8 clients", nil)    // not measured
	f("vs the seed at 1,000 keys", &yes)
	f("vs redis-benchmark GET, 64 clients", &yes) // 2.5x
	f("bulk load of 1M JSON Lines rows", &yes)
	f("1M sets: memory", &no) // 5x
	f("Redis port GET, 64 clients", &yes)
	f("Redis port GET, 64 clients, -P 16", &no)
	f("Redis port SET on a memory-mode RDD, 64 clients", nil) // not measured
}

func TestRedisPortTable(t *testing.T) {
	md := sample().Markdown(nil, "")
	for _, want := range []string{"### srdd's Redis port vs redis-server (64 clients)",
		"| GET | 1 | 80000 | 44000 | 55% | - | - | 40000 |",
		"| GET | 16 | 800000 | 160000 | 20% | 150000 | 19% | - |",
		"| SET | 1 | - | - | - | - | - | 40000 |"} {
		if !strings.Contains(md, want) {
			t.Fatalf("no %q in:\n%s", want, md)
		}
	}
}

func TestMarkdownAndCharts(t *testing.T) {
	r := sample()
	dir := t.TempDir()
	charts, err := r.Charts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(charts) != 2 {
		t.Fatalf("charts = %v", charts)
	}
	for _, c := range charts {
		b, err := os.ReadFile(filepath.Join(dir, c))
		if err != nil || len(b) < 1000 || string(b[1:4]) != "PNG" {
			t.Fatalf("%s is not a PNG (%d bytes, %v)", c, len(b), err)
		}
	}
	md := r.Markdown(charts, "## Profiling log\n\nbefore/after")
	for _, want := range []string{"## Machine", "2 cores", "| cached get, 64 clients |", "**no**", "get-cached-c64",
		"## Interpreter memory", "![latency-cdf.png]", "## Profiling log"} {
		if !strings.Contains(md, want) {
			t.Fatalf("markdown lacks %q:\n%s", want, md)
		}
	}
	path := filepath.Join(dir, "r.json")
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := LoadResults(path)
	if err != nil || len(back.Runs) != len(r.Runs) || back.Run("set-c8", "srdd") == nil {
		t.Fatalf("round trip: %v", err)
	}
}
