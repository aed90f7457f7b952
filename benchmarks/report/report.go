// Package report holds the benchmark suite's results, checks them against
// the targets of issue 3, and renders RESULTS.md and the charts.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/srdd/srdd/benchmarks/loadgen"
)

// Machine is where the suite ran.
type Machine struct {
	CPU            string  `json:"cpu"`
	Cores          int     `json:"cores"`
	MemoryGiB      float64 `json:"memory_gib"`
	Kernel         string  `json:"kernel"`
	OS             string  `json:"os"`
	GoVersion      string  `json:"go"`
	LoadAvgAtStart string  `json:"loadavg_at_start"`
}

// Memory is the resident memory of one session's interpreter, in MiB.
type Memory struct {
	Label     string  `json:"label"`
	DriverMB  float64 `json:"python_driver_mib"`
	JVMMB     float64 `json:"jvm_mib"`
	WorkersMB float64 `json:"python_workers_mib"`
	RawMB     float64 `json:"raw_data_mib"` // keys + values, bytes
	Keys      int64   `json:"keys"`
}

// Total is the Python driver plus the JVM (what the target counts).
func (m Memory) Total() float64 { return m.DriverMB + m.JVMMB }

// Load is one bulk load.
type Load struct {
	Label      string    `json:"label"`
	Rows       int64     `json:"rows"`
	Bytes      int64     `json:"bytes"`
	Seconds    float64   `json:"seconds"`
	RowsPerSec float64   `json:"rows_per_sec"`
	Progress   []string  `json:"progress"` // what the RDD's state showed while it ran
	Finished   time.Time `json:"finished"`
}

// RedisBench is one redis-benchmark run.
type RedisBench struct {
	Test      string  `json:"test"`
	Clients   int     `json:"clients"`
	Requests  int     `json:"requests"`
	RPS       float64 `json:"rps"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	CmdLine   string  `json:"cmdline"`
	RawOutput string  `json:"raw_output,omitempty"`
	// Target is what ran: "" (runs before issue 26) or "redis-server" a
	// real Redis, "srdd" srdd's Redis port, on an RDD of Mode (memory or
	// durable). Pipeline is -P (0: not given, one request at a time).
	Target   string `json:"target,omitempty"`
	Mode     string `json:"mode,omitempty"`
	Pipeline int    `json:"pipeline,omitempty"`
}

// redisRun finds a redis-benchmark run (nil if absent).
func (r *Results) redisRun(target, mode, test string, clients, pipeline int) *RedisBench {
	for i := range r.Redis {
		x := &r.Redis[i]
		if x.Target == target && x.Mode == mode && x.Test == test && x.Clients == clients && max(x.Pipeline, 1) == max(pipeline, 1) {
			return x
		}
	}
	return nil
}

// CurvePoint is get latency at one key count (the seed vs srdd chart).
type CurvePoint struct {
	Target string  `json:"target"`
	Keys   int     `json:"keys"`
	P50Ms  float64 `json:"p50_ms"`
	MeanMs float64 `json:"mean_ms"`
	Ops    int64   `json:"ops"`
}

// Results is everything one suite run measured.
type Results struct {
	Started  time.Time        `json:"started"`
	Seconds  float64          `json:"seconds"`
	Machine  Machine          `json:"machine"`
	Commands []string         `json:"commands"`
	Runs     []loadgen.Result `json:"runs"`
	Loads    []Load           `json:"loads"`
	Memory   []Memory         `json:"memory"`
	Redis    []RedisBench     `json:"redis_benchmark"`
	Curve    []CurvePoint     `json:"curve"`
	Notes    []string         `json:"notes"`
}

// Run finds a run by scenario and target (nil if absent).
func (r *Results) Run(scenario, target string) *loadgen.Result {
	for i := range r.Runs {
		if r.Runs[i].Scenario == scenario && r.Runs[i].Target == target {
			return &r.Runs[i]
		}
	}
	return nil
}

// Save writes the results as indented JSON.
func (r *Results) Save(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// LoadResults reads results written by Save.
func LoadResults(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Results
	return &r, json.Unmarshal(b, &r)
}

// Target is one target of the issue with its measured figure.
type Target struct {
	Name     string `json:"name"`
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Met      *bool  `json:"met"` // nil: not measured in this run
}

func met(b bool) *bool { return &b }

// Targets checks the results against the issue's targets.
func (r *Results) Targets() []Target {
	var out []Target
	add := func(name, goal string, f func() (string, bool, bool)) {
		m, ok, measured := f()
		t := Target{Name: name, Goal: goal, Measured: m}
		if measured {
			t.Met = met(ok)
		} else if t.Measured == "" {
			t.Measured = "not measured"
		}
		out = append(out, t)
	}
	run := func(s, t string) *loadgen.Result { return r.Run(s, t) }
	ratio := func(a, b *loadgen.Result) float64 {
		if a == nil || b == nil || b.OpsPerSec == 0 {
			return 0
		}
		return a.OpsPerSec / b.OpsPerSec
	}
	// p50Within checks an srdd scenario's median latency against ms.
	p50Within := func(scenario string, ms float64) func() (string, bool, bool) {
		return func() (string, bool, bool) {
			g := run(scenario, "srdd")
			if g == nil {
				return "", false, false
			}
			return fmt.Sprintf("p50 %.3f ms (p99 %.2f ms, %.0f ops/s)", g.Latency.P50, g.Latency.P99, g.OpsPerSec), g.Latency.P50 <= ms, true
		}
	}
	add("cached get, 8 clients", "p50 <= 1 ms", p50Within("get-cached-c8", 1))
	add("cached get, 64 clients", ">= 50% of the no-op route's ops/s; p99 <= 10 ms", func() (string, bool, bool) {
		g, n := run("get-cached-c64", "srdd"), run("noop-c64", "noop")
		if g == nil || n == nil {
			return "", false, false
		}
		q := ratio(g, n)
		return fmt.Sprintf("%.0f ops/s = %.0f%% of no-op %.0f ops/s; p99 %.2f ms", g.OpsPerSec, 100*q, n.OpsPerSec, g.Latency.P99),
			q >= 0.5 && g.Latency.P99 <= 10, true
	})
	add("cold get, 8 clients", "p50 <= 30 ms, p99 <= 150 ms", func() (string, bool, bool) {
		g := run("get-cold-c8", "srdd")
		if g == nil {
			return "", false, false
		}
		return fmt.Sprintf("p50 %.1f ms, p99 %.1f ms (%.0f keys/s)", g.Latency.P50, g.Latency.P99, g.OpsPerSec),
			g.Latency.P50 <= 30 && g.Latency.P99 <= 150, true
	})
	add("cold get, 64 clients", ">= 5,000 keys/s", func() (string, bool, bool) {
		g := run("get-cold-c64", "srdd")
		if g == nil {
			return "", false, false
		}
		s := fmt.Sprintf("%.0f keys/s with one key per request (p50 %.0f ms)", g.OpsPerSec, g.Latency.P50)
		best := g.OpsPerSec
		if b := run("get-cold-batch-c64", "srdd"); b != nil {
			s += fmt.Sprintf("; %.0f keys/s with batch gets of %d keys (p50 %.0f ms)", b.KeysPerSec, b.Config.Batch, b.Latency.P50)
			best = max(best, b.KeysPerSec)
		}
		return s, best >= 5000, true
	})
	add("set, 8 clients", "p50 <= 2 ms", p50Within("set-c8", 2))
	add("set, 64 clients", ">= 35% of the no-op route's ops/s", func() (string, bool, bool) {
		g, n := run("set-c64", "srdd"), run("noop-c64", "noop")
		if g == nil || n == nil {
			return "", false, false
		}
		q := ratio(g, n)
		return fmt.Sprintf("%.0f ops/s = %.0f%% of no-op (p99 %.1f ms)", g.OpsPerSec, 100*q, g.Latency.P99), q >= 0.35, true
	})
	add("1M keys: flat get latency", "same get latency as at 100k", func() (string, bool, bool) {
		c1, c0 := run("get-cached-c8-1m", "srdd"), run("get-cached-c8", "srdd")
		k1, k0 := run("get-cold-c8-1m", "srdd"), run("get-cold-c8", "srdd")
		if c1 == nil || c0 == nil {
			return "", false, false
		}
		s := fmt.Sprintf("cached p50 %.3f ms at 1M vs %.3f ms at 100k", c1.Latency.P50, c0.Latency.P50)
		ok := c1.Latency.P50 <= 1.5*c0.Latency.P50+0.1
		if k1 != nil && k0 != nil {
			s += fmt.Sprintf("; cold p50 %.1f ms vs %.1f ms", k1.Latency.P50, k0.Latency.P50)
			ok = ok && k1.Latency.P50 <= 1.5*k0.Latency.P50
		}
		return s, ok, true
	})
	add("1M sets: memory", "Python driver + JVM <= 4x raw data", func() (string, bool, bool) {
		for _, m := range r.Memory {
			if m.Label == "after 1M sets" && m.RawMB > 0 {
				q := m.Total() / m.RawMB
				return fmt.Sprintf("%.0f MiB (driver %.0f + JVM %.0f) = %.1fx of %.0f MiB raw; Python workers %.0f MiB more",
					m.Total(), m.DriverMB, m.JVMMB, q, m.RawMB, m.WorkersMB), q <= 4, true
			}
		}
		return "", false, false
	})
	add("vs the seed at 1,000 keys", ">= 100x the get throughput", func() (string, bool, bool) {
		s, d := run("seed-get-1000-c8", "seed"), run("get-1000-c8", "srdd")
		if s == nil || d == nil || s.OpsPerSec == 0 {
			return "", false, false
		}
		q := d.OpsPerSec / s.OpsPerSec
		return fmt.Sprintf("srdd %.0f ops/s vs seed %.2f ops/s = %.0fx", d.OpsPerSec, s.OpsPerSec, q), q >= 100, true
	})
	add("vs redis-benchmark GET, 64 clients", "cached get ops/s within 5x", func() (string, bool, bool) {
		g := run("get-cached-c64", "srdd")
		for _, rb := range r.Redis {
			if rb.Target == "" && rb.Test == "GET" && rb.Clients == 64 && g != nil && g.OpsPerSec > 0 {
				q := rb.RPS / g.OpsPerSec
				return fmt.Sprintf("redis-benchmark %.0f rps vs srdd %.0f ops/s = %.1fx", rb.RPS, g.OpsPerSec, q), q <= 5, true
			}
		}
		return "", false, false
	})
	// Issue 26: srdd's Redis port against redis-server, same run, 64 clients.
	for _, g := range []struct {
		name, goal, test, mode string
		pipeline               int
		share                  float64
	}{
		{"Redis port GET, 64 clients", ">= 50% of redis-server's requests/s", "GET", "memory", 1, 0.5},
		{"Redis port GET, 64 clients, -P 16", ">= 25% of redis-server's requests/s", "GET", "memory", 16, 0.25},
		{"Redis port SET on a memory-mode RDD, 64 clients", ">= 25% of redis-server's requests/s", "SET", "memory", 1, 0.25},
	} {
		add(g.name, g.goal, func() (string, bool, bool) {
			base, port := r.redisRun("redis-server", "", g.test, 64, g.pipeline), r.redisRun("srdd", g.mode, g.test, 64, g.pipeline)
			if base == nil || port == nil || base.RPS == 0 {
				return "", false, false
			}
			q := port.RPS / base.RPS
			return fmt.Sprintf("srdd %.0f rps vs redis-server %.0f rps = %.0f%%", port.RPS, base.RPS, 100*q), q >= g.share, true
		})
	}
	add("bulk load of 1M JSON Lines rows", ">= 100,000 rows/s", func() (string, bool, bool) {
		for _, l := range r.Loads {
			if l.Label == "1M jsonl" {
				return fmt.Sprintf("%.0f rows/s (%d rows in %.1f s)", l.RowsPerSec, l.Rows, l.Seconds), l.RowsPerSec >= 100_000, true
			}
		}
		return "", false, false
	})
	r.issue16Targets(add, run, ratio)
	return out
}

// issue16Targets: cold reads, tail latency, memory of the whole process
// tree, 10M keys and a standalone cluster (issue 16), per data-set tag.
func (r *Results) issue16Targets(add func(string, string, func() (string, bool, bool)), run func(string, string) *loadgen.Result,
	ratio func(a, b *loadgen.Result) float64) {
	for _, tag := range []string{"@1M", "@10M", "@1M-standalone"} {
		add("cold get, 8 clients "+tag, "p50 <= 10 ms, p99 <= 50 ms", func() (string, bool, bool) {
			g := run("cold-get-c8"+tag, "srdd")
			if g == nil {
				return "", false, false
			}
			return fmt.Sprintf("p50 %.2f ms, p99 %.2f ms (%.0f keys/s)", g.Latency.P50, g.Latency.P99, g.OpsPerSec),
				g.Latency.P50 <= 10 && g.Latency.P99 <= 50, true
		})
		for _, b := range []struct {
			n    int
			goal float64
		}{{100, 20}, {10_000, 100}} {
			add(fmt.Sprintf("cold multiget, %d keys %s", b.n, tag), fmt.Sprintf("<= %.0f ms", b.goal), func() (string, bool, bool) {
				g := run(fmt.Sprintf("cold-mget-%d%s", b.n, tag), "srdd")
				if g == nil {
					return "", false, false
				}
				return fmt.Sprintf("p50 %.1f ms, p99 %.1f ms (%.0f keys/s)", g.Latency.P50, g.Latency.P99, g.KeysPerSec),
					g.Latency.P50 <= b.goal, true
			})
		}
		for _, w := range []string{"", "-compaction", "-load"} {
			what := map[string]string{"": "alone", "-compaction": "during a compaction", "-load": "during a bulk load"}[w]
			add("cached get p99, 64 clients, "+what+" "+tag, "p99 <= 10 ms", func() (string, bool, bool) {
				g := run("cached-get-c64"+w+tag, "srdd")
				if g == nil {
					return "", false, false
				}
				s := fmt.Sprintf("p99 %.2f ms, p50 %.2f ms, %.0f ops/s", g.Latency.P99, g.Latency.P50, g.OpsPerSec)
				ok := g.Latency.P99 <= 10
				if n := run("noop-c64", "noop"); w == "" && n != nil {
					q := ratio(g, n)
					s += fmt.Sprintf(" = %.0f%% of no-op %.0f ops/s", 100*q, n.OpsPerSec)
					ok = ok && q >= 0.5
				}
				return s, ok, true
			})
		}
		add("memory after loading "+tag, "Python driver + JVM + Python workers <= 3x raw data", func() (string, bool, bool) {
			for _, m := range r.Memory {
				if strings.HasPrefix(m.Label, "after loading ") && strings.HasSuffix(m.Label, tag) && m.RawMB > 0 {
					total := m.DriverMB + m.JVMMB + m.WorkersMB
					q := total / m.RawMB
					return fmt.Sprintf("%.0f MiB (driver %.0f + JVM %.0f + workers %.0f) = %.1fx of %.0f MiB raw",
						total, m.DriverMB, m.JVMMB, m.WorkersMB, q, m.RawMB), q <= 3, true
				}
			}
			return "", false, false
		})
	}
	add("bulk load, 10M keys", ">= 200,000 rows/s", func() (string, bool, bool) {
		for _, l := range r.Loads {
			if strings.HasSuffix(l.Label, "@10M") {
				return fmt.Sprintf("%.0f rows/s (%d rows in %.1f s)", l.RowsPerSec, l.Rows, l.Seconds), l.RowsPerSec >= 200_000, true
			}
		}
		return "", false, false
	})
	add("durable writes spread over 3 nodes, 64 clients", ">= 5,000 writes/s", func() (string, bool, bool) {
		sp := run("durable-set-c64-spread", "srdd-3-nodes")
		if sp == nil {
			return "", false, false
		}
		m := fmt.Sprintf("%.0f writes/s (p50 %.1f ms, p99 %.1f ms)", sp.OpsPerSec, sp.Latency.P50, sp.Latency.P99)
		if ow := run("durable-set-c64-owner", "srdd"); ow != nil {
			m += fmt.Sprintf("; all 64 clients on the owner: %.0f writes/s", ow.OpsPerSec)
		}
		return m, sp.OpsPerSec >= 5000, true
	})
	add("get latency flat from 1M to 10M keys", "cold and cached p50 at 10M within 1.5x (+0.1 ms) of 1M", func() (string, bool, bool) {
		k1, k10 := run("cold-get-c8@1M", "srdd"), run("cold-get-c8@10M", "srdd")
		c1, c10 := run("cached-get-c64@1M", "srdd"), run("cached-get-c64@10M", "srdd")
		if k1 == nil || k10 == nil || c1 == nil || c10 == nil {
			return "", false, false
		}
		return fmt.Sprintf("cold p50 %.2f ms at 10M vs %.2f ms at 1M; cached (64 clients) p50 %.2f vs %.2f ms",
				k10.Latency.P50, k1.Latency.P50, c10.Latency.P50, c1.Latency.P50),
			k10.Latency.P50 <= 1.5*k1.Latency.P50+0.1 && c10.Latency.P50 <= 1.5*c1.Latency.P50+0.1, true
	})
}

// Markdown renders RESULTS.md: machine, targets, every run, loads, memory,
// the charts, and the hand-kept profiling log (profiling.md) verbatim.
func (r *Results) Markdown(charts []string, profilingLog string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# srdd benchmark results\n\n")
	w("Generated by `make bench` (benchmarks/cmd/bench suite) on %s in %.0f s. ", r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Seconds)
	w("Raw numbers: `benchmarks/results/results.json`. Regenerate this page from them with `go run ./benchmarks/cmd/bench report`.\n\n")
	w("## Machine\n\n")
	m := r.Machine
	w("- CPU: %s, %d cores; memory %.1f GiB\n- %s, kernel %s, %s\n- load average when the suite started: %s\n",
		m.CPU, m.Cores, m.MemoryGiB, m.OS, m.Kernel, m.GoVersion, m.LoadAvgAtStart)
	w("- the load generator, srdd (Go node, Python driver, JVM), Redis and the no-op server all share these cores; throughput targets are therefore ratios against the no-op route measured in the same run with the same generator\n\n")
	if len(r.Commands) > 0 {
		w("Servers were started as:\n\n```\n%s\n```\n\n", strings.Join(r.Commands, "\n"))
	}
	w("## Targets\n\n| target | goal | measured | met |\n|---|---|---|---|\n")
	for _, t := range r.Targets() {
		status := "-"
		if t.Met != nil {
			status = map[bool]string{true: "yes", false: "**no**"}[*t.Met]
		}
		w("| %s | %s | %s | %s |\n", t.Name, t.Goal, t.Measured, status)
	}
	w("\n## Every run\n\nClosed loop: each client sends its next request when the previous one is answered. Latencies in ms.\n\n")
	w("| scenario | target | clients | keys | dist | read | ops | ops/s | p50 | p99 | p99.9 | max | errors |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, x := range r.Runs {
		w("| %s | %s | %d | %d | %s | %.2f | %d | %.0f | %.3f | %.3f | %.3f | %.3f | %d |\n", x.Scenario, x.Target,
			x.Config.Concurrency, x.Config.Keys, x.Config.Dist, x.Config.ReadRatio, x.Ops, x.OpsPerSec,
			x.Latency.P50, x.Latency.P99, x.Latency.P999, x.Latency.Max, x.Errors)
	}
	if len(r.Redis) > 0 {
		w("\n### redis-benchmark\n\n| target | RDD mode | test | clients | -P | requests | rps | p50 ms | p99 ms | command |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for _, x := range r.Redis {
			target := x.Target
			if target == "" {
				target = "redis-server"
			}
			w("| %s | %s | %s | %d | %d | %d | %.0f | %.3f | %.3f | `%s` |\n", target, x.Mode, x.Test, x.Clients, max(x.Pipeline, 1), x.Requests, x.RPS, x.P50Ms, x.P99Ms, x.CmdLine)
		}
		r.redisPortTable(w)
	}
	if len(r.Loads) > 0 {
		w("\n## Bulk loads\n\n| load | rows | input MiB | seconds | rows/s | progress shown while it ran (GET /v1/rdds/{name}) |\n|---|---|---|---|---|---|\n")
		for _, l := range r.Loads {
			prog := l.Progress
			if len(prog) > 6 {
				prog = append(append([]string{}, prog[:3]...), append([]string{"..."}, prog[len(prog)-3:]...)...)
			}
			w("| %s | %d | %.1f | %.1f | %.0f | %s |\n", l.Label, l.Rows, float64(l.Bytes)/(1<<20), l.Seconds, l.RowsPerSec, strings.Join(prog, "; "))
		}
	}
	if len(r.Memory) > 0 {
		w("\n## Interpreter memory (resident, MiB)\n\n| when | keys | raw data | Python driver | JVM | driver + JVM | x raw | Python workers |\n|---|---|---|---|---|---|---|---|\n")
		for _, x := range r.Memory {
			q := "-"
			if x.RawMB > 0 {
				q = fmt.Sprintf("%.1f", x.Total()/x.RawMB)
			}
			w("| %s | %d | %.0f | %.0f | %.0f | %.0f | %s | %.0f |\n", x.Label, x.Keys, x.RawMB, x.DriverMB, x.JVMMB, x.Total(), q, x.WorkersMB)
		}
	}
	if len(r.Curve) > 0 {
		w("\n## Get latency as the key count grows\n\n| target | keys | ops | p50 ms | mean ms |\n|---|---|---|---|---|\n")
		cv := append([]CurvePoint(nil), r.Curve...)
		sort.SliceStable(cv, func(i, j int) bool {
			if cv[i].Target != cv[j].Target {
				return cv[i].Target < cv[j].Target
			}
			return cv[i].Keys < cv[j].Keys
		})
		for _, c := range cv {
			w("| %s | %d | %d | %.3f | %.3f |\n", c.Target, c.Keys, c.Ops, c.P50Ms, c.MeanMs)
		}
	}
	if len(charts) > 0 {
		w("\n## Charts\n\n")
		for _, c := range charts {
			w("![%s](%s)\n\n", c, c)
		}
	}
	if len(r.Notes) > 0 {
		w("## Notes from this run\n\n")
		for _, n := range r.Notes {
			w("- %s\n", n)
		}
		w("\n")
	}
	if profilingLog != "" {
		w("%s\n", strings.TrimSpace(profilingLog))
	}
	return b.String()
}

// redisPortTable writes issue 26's comparison: srdd's Redis port beside
// redis-server and srdd's REST figures of the same run, if it ran.
func (r *Results) redisPortTable(w func(string, ...any)) {
	if r.redisRun("srdd", "memory", "GET", 64, 1) == nil {
		return
	}
	w("\n### srdd's Redis port vs redis-server (64 clients)\n\n| test | -P | redis-server rps | srdd memory rps | %% | srdd durable rps | %% | srdd REST ops/s (closed loop) |\n|---|---|---|---|---|---|---|---|\n")
	rest := map[string]string{"GET": "get-cached-c64", "SET": "set-c64"}
	for _, test := range []string{"GET", "SET"} {
		for _, p := range []int{1, 16} {
			base := r.redisRun("redis-server", "", test, 64, p)
			cell := func(x *RedisBench) (string, string) {
				if x == nil {
					return "-", "-"
				}
				if base == nil || base.RPS == 0 {
					return fmt.Sprintf("%.0f", x.RPS), "-"
				}
				return fmt.Sprintf("%.0f", x.RPS), fmt.Sprintf("%.0f%%", 100*x.RPS/base.RPS)
			}
			b, _ := cell(base)
			m, mp := cell(r.redisRun("srdd", "memory", test, 64, p))
			d, dp := cell(r.redisRun("srdd", "durable", test, 64, p))
			restOps := "-"
			if x := r.Run(rest[test], "srdd"); x != nil && p == 1 {
				restOps = fmt.Sprintf("%.0f", x.OpsPerSec)
			}
			w("| %s | %d | %s | %s | %s | %s | %s | %s |\n", test, p, b, m, mp, d, dp, restOps)
		}
	}
}
