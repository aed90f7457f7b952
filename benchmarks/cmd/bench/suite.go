package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/srdd/srdd/benchmarks/loadgen"
	"github.com/srdd/srdd/benchmarks/report"
	srddclient "github.com/srdd/srdd/client/go"
	"github.com/srdd/srdd/internal/netutil"
)

type suite struct {
	ctx        context.Context
	res        *report.Results
	srddAddr   string
	noopAddr   string
	redisAddr  string
	srddRedis  string // srdd's Redis port (--redis-addr)
	srddPid    int
	cl         *srddclient.Client
	tmp        string
	duration   time.Duration
	warmup     time.Duration
	keys       int
	valueSize  int
	redisBench string
	quick      bool
	loaded     map[string]bool // RDDs dataset() loaded
	mgetOps    int             // multigets per cold multiget run (0: 100 of 100 keys, 15 of 10,000)
}

func suiteCmd(args []string) error {
	fs := flag.NewFlagSet("suite", flag.ExitOnError)
	srddBin := fs.String("srdd", "bin/srdd", "the srdd binary")
	python := fs.String("python", ".venv/bin/python", "Python with pyspark for the interpreters")
	out := fs.String("out", "benchmarks", "directory for RESULTS.md; results/ below it gets results.json and the charts")
	duration := fs.Duration("duration", 15*time.Second, "measured time of each run")
	warmup := fs.Duration("warmup", 3*time.Second, "unmeasured time before each run")
	quick := fs.Bool("quick", false, "short runs, no 1M-key part, fewer seed points (a smoke test of the suite)")
	skip1M := fs.Bool("skip-1m", false, "skip the 1M-key part (load, flatness, memory)")
	skipSeed := fs.Bool("skip-seed", false, "skip the seed comparison")
	redisServer := fs.String("redis-server", "redis-server", "redis-server binary")
	redisBench := fs.String("redis-benchmark", "redis-benchmark", "redis-benchmark binary")
	only := fs.String("only", "", "run only these steps (comma-separated): noop, 100k, redis, redisport, seed, 1m, memory, coldget, tail, 10m, standalone, durable")
	mgetOps := fs.Int("mget-ops", 0, "multigets per cold multiget run (0: 100 of 100 keys, 15 of 10,000 keys)")
	skipTail := fs.Bool("skip-tail", false, "skip the tail runs (cached gets during a compaction and a load) of the issue-16 steps")
	skip10M := fs.Bool("skip-10m", false, "skip the 10M-key step")
	skipStandalone := fs.Bool("skip-standalone", false, "skip the standalone Spark cluster step")
	skipDurable := fs.Bool("skip-durable", false, "skip the 3-node durable write step")
	bigKeys := fs.Int("big-keys", 10_000_000, "keys of the 10M step")
	coldKeys := fs.Int("cold-keys", 1_000_000, "keys of the coldget, tail and standalone steps")
	waitIdle := fs.Duration("wait-idle", 10*time.Minute, "first wait up to this long for the machine to be idle (1-minute load average below 1)")
	_ = fs.Parse(args)
	if *quick {
		*duration, *warmup, *skip1M, *skip10M, *skipStandalone, *skipDurable = 4*time.Second, time.Second, true, true, true, true
		*coldKeys = 100_000
	}
	want := map[string]bool{}
	for _, w := range strings.Split(*only, ",") {
		if w = strings.TrimSpace(w); w != "" {
			want[w] = true
		}
	}
	s := &suite{ctx: context.Background(), duration: *duration, warmup: *warmup, keys: 100_000, valueSize: 100,
		redisBench: *redisBench, quick: *quick, mgetOps: *mgetOps,
		res: &report.Results{Started: time.Now(), Machine: machineInfo()}}
	var err error
	if s.tmp, err = os.MkdirTemp("", "srdd-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(s.tmp)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	waitForIdle(*waitIdle)
	s.res.Machine = machineInfo()
	fmt.Printf("machine: %+v\n", s.res.Machine)

	noop, line, err := startChild("noop", func(l string) bool { return strings.HasPrefix(l, "noop listening on ") }, 30*time.Second, self, "noop")
	if err != nil {
		return err
	}
	defer noop.stop()
	s.noopAddr = strings.TrimPrefix(line, "noop listening on ")

	if len(want) == 0 || want["redis"] || want["redisport"] {
		port, err := netutil.FreePort()
		if err != nil {
			return err
		}
		redisArgs := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "yes"}
		redis, _, err := startChild("redis", func(l string) bool { return strings.Contains(l, "Ready to accept connections") }, 30*time.Second, *redisServer, redisArgs...)
		if err != nil {
			return fmt.Errorf("%w (install it: apt-get install redis-server)", err)
		}
		defer redis.stop()
		s.redisAddr = fmt.Sprintf("127.0.0.1:%d", port)
		s.res.Commands = append(s.res.Commands, *redisServer+" "+strings.Join(redisArgs, " "))
	}

	redisPort, err := netutil.FreePort()
	if err != nil {
		return err
	}
	s.srddRedis = fmt.Sprintf("127.0.0.1:%d", redisPort)
	srddArgs := []string{"server", "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--redis-addr", s.srddRedis,
		"--data-dir", filepath.Join(s.tmp, "data"), "--python", *python, "--log-level", "warn", "--file-root", s.tmp}
	srdd, line, err := startChild("srdd", func(l string) bool { return strings.Contains(l, "serving on http://") }, 2*time.Minute, *srddBin, srddArgs...)
	if err != nil {
		return err
	}
	defer srdd.stop()
	s.srddPid = srdd.cmd.Process.Pid
	s.srddAddr = strings.Fields(strings.SplitN(line, "http://", 2)[1])[0]
	s.cl = srddclient.New(s.srddAddr)
	s.res.Commands = append(s.res.Commands, *srddBin+" "+strings.Join(srddArgs, " "), "bench noop --addr 127.0.0.1:0")

	if *out == "benchmarks" && len(want) > 0 {
		// A partial run must not overwrite the full suite's results.
		*out = filepath.Join("benchmarks", "results", "only-"+strings.ReplaceAll(*only, ",", "-"))
		if err := os.MkdirAll(filepath.Join(*out, "results"), 0o755); err != nil {
			return err
		}
	}
	began := time.Now()
	if id, err := s.createSession(`{"kind":"pyspark"}`); err != nil {
		return err
	} else if id != 0 {
		return fmt.Errorf("the first session got id %d", id)
	}
	cold := map[string]bool{"coldget": true, "tail": true}
	if len(want) > 0 {
		cold = map[string]bool{"coldget": want["coldget"] || want["10m"] || want["standalone"],
			"tail": want["tail"] || want["10m"] || want["standalone"]}
	}
	if *skipTail {
		cold["tail"] = false
	}
	steps := []struct {
		key, name string
		skip      bool
		f         func() error
	}{
		{"noop", "no-op route", false, s.noopRuns},
		{"100k", "srdd at 100k keys", false, s.srdd100k},
		{"redis", "redis", false, s.redisRuns},
		{"redisport", "srdd's Redis port vs redis-server (issue 26)", false, s.redisPortRuns},
		{"seed", "seed comparison", *skipSeed, func() error {
			// On a node of its own, whose sessions get a 64 MiB thread stack:
			// with the JVM's default, serializing the task of a 1,000-deep
			// union fails with StackOverflowError (measured) and no get
			// succeeds. Only the operator may set JVM options (a client's
			// session request may not), so it is the node's --spark-conf.
			return s.onNode(*srddBin, *python, "seed", []string{"--spark-conf", "spark.driver.extraJavaOptions=-Xss64m"}, s.seedRuns)
		}},
		{"1m", "srdd at 1M keys", *skip1M, s.srdd1M},
		{"memory", "memory after 1M sets", *skip1M, s.memory1M},
		{"coldget", "cold reads, tail latency and memory at " + countLabel(*coldKeys) + " keys (issue 16)", false, func() error {
			parts := map[string]bool{"coldget": len(want) == 0 || want["coldget"], "tail": (len(want) == 0 || want["tail"]) && !*skipTail}
			return s.issue16At(*coldKeys, "@"+countLabel(*coldKeys), parts)
		}},
		{"10m", "10M keys (issue 16)", *skip10M, func() error { return s.issue16At(*bigKeys, "@"+countLabel(*bigKeys), cold) }},
		{"standalone", "standalone Spark master + worker (issue 16)", *skipStandalone, func() error {
			return s.standalone(*python, *srddBin, *coldKeys, cold)
		}},
		{"durable", "durable writes over 3 nodes", *skipDurable, func() error {
			// bench durable's latency/throughput runs only; its recovery and
			// soak figures are kept from benchmarks/results/durable.json.
			if err := durableCmd([]string{"--srdd", *srddBin, "--python", *python, "--out", *out,
				"--skip-recovery", "--soak", "0", "--keep", filepath.Join("benchmarks", "results", "durable.json")}); err != nil {
				return err
			}
			// Its 64-client runs go into this suite's results too, for the
			// targets table.
			b, err := os.ReadFile(filepath.Join(*out, "results", "durable.json"))
			if err != nil {
				return err
			}
			var d struct {
				Runs []loadgen.Result `json:"runs"`
			}
			if err := json.Unmarshal(b, &d); err != nil {
				return err
			}
			for _, r := range d.Runs {
				if strings.HasPrefix(r.Scenario, "durable-set-c64") {
					s.res.Runs = append(s.res.Runs, r)
				}
			}
			return nil
		}},
	}
	for _, st := range steps {
		if len(want) > 0 && !want[st.key] && !(st.key == "coldget" && want["tail"]) {
			continue
		}
		if st.skip {
			s.note("skipped: %s", st.name)
			continue
		}
		fmt.Printf("== %s\n", st.name)
		if err := st.f(); err != nil {
			s.note("%s failed: %v", st.name, err)
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", st.name, err)
		}
	}
	s.res.Seconds = time.Since(began).Seconds()
	return writeReport(s.res, *out)
}

// writeReport saves results.json, the charts, and RESULTS.md.
func writeReport(res *report.Results, out string) error {
	dir := filepath.Join(out, "results")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := res.Save(filepath.Join(dir, "results.json")); err != nil {
		return err
	}
	charts, err := res.Charts(dir)
	if err != nil {
		return err
	}
	for i, c := range charts {
		charts[i] = "results/" + c
	}
	logText, _ := os.ReadFile(filepath.Join(out, "profiling.md"))
	md := res.Markdown(charts, string(logText))
	if err := os.WriteFile(filepath.Join(out, "RESULTS.md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s and %s\n", filepath.Join(out, "RESULTS.md"), dir)
	for _, t := range res.Targets() {
		status := "-"
		if t.Met != nil {
			status = map[bool]string{true: "met", false: "MISSED"}[*t.Met]
		}
		fmt.Printf("  %-7s %-38s %s\n", status, t.Name, t.Measured)
	}
	return nil
}

func reportCmd(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	out := fs.String("out", "benchmarks", "directory holding results/results.json; RESULTS.md is rewritten")
	_ = fs.Parse(args)
	res, err := report.LoadResults(filepath.Join(*out, "results", "results.json"))
	if err != nil {
		return err
	}
	return writeReport(res, *out)
}

func (s *suite) note(format string, a ...any) {
	s.res.Notes = append(s.res.Notes, fmt.Sprintf(format, a...))
}

func (s *suite) cfg(scenario string, clients int) loadgen.Config {
	_ = scenario
	return loadgen.Config{Keys: s.keys, ValueSize: s.valueSize, Concurrency: clients, ReadRatio: 1,
		Dist: "uniform", Duration: s.duration, Warmup: s.warmup, Seed: 1}
}

func (s *suite) run(scenario string, cfg loadgen.Config, t loadgen.Target) *loadgen.Result {
	r, err := loadgen.Run(s.ctx, scenario, cfg, t)
	if err != nil {
		s.note("%s on %s: %v", scenario, t.Name(), err)
	}
	if r.Errors > 0 {
		s.note("%s on %s: %d errors, first: %s", scenario, t.Name(), r.Errors, r.FirstError)
	}
	printResult(r)
	s.res.Runs = append(s.res.Runs, r)
	return &s.res.Runs[len(s.res.Runs)-1]
}

// ------------------------------------------------------------ srdd helpers

// createSession creates a session and waits until it is idle.
func (s *suite) createSession(body string) (int64, error) {
	var out struct {
		ID int64 `json:"id"`
	}
	if err := s.cl.Do(s.ctx, http.MethodPost, "/sessions", json.RawMessage(body), &out); err != nil {
		return 0, err
	}
	return out.ID, s.waitSession(out.ID)
}

func (s *suite) waitSession(id int64) error {
	deadline := time.Now().Add(4 * time.Minute)
	for time.Now().Before(deadline) {
		var st struct {
			State string `json:"state"`
		}
		if err := s.cl.Do(s.ctx, http.MethodGet, fmt.Sprintf("/sessions/%d/state", id), nil, &st); err != nil {
			return err
		}
		switch st.State {
		case "idle":
			return nil
		case "error", "dead":
			return fmt.Errorf("session %d is %s", id, st.State)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("session %d not idle within 4 minutes", id)
}

// createRDD creates a memory-mode RDD: the engine's targets (issue 3)
// are for memory mode; durable writes are measured on their own.
func (s *suite) createRDD(name, session string) error {
	_, err := s.cl.CreateRDDMode(s.ctx, name, session, "memory")
	return err
}

// writeJSONL writes n rows of the load generator's keys and values.
func (s *suite) writeJSONL(path string, n int) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := 0; i < n; i++ {
		fmt.Fprintf(w, "{\"key\":\"%s\",\"value\":%s}\n", loadgen.KeyName("", i), loadgen.Value(s.valueSize, i%256))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return 0, err
	}
	fi, _ := f.Stat()
	return fi.Size(), f.Close()
}

// load loads a file into rdd, recording the progress the RDD's state shows.
func (s *suite) load(label, rdd, path string) (report.Load, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return report.Load{}, err
	}
	if _, err := s.cl.Load(s.ctx, rdd, path, srddclient.LoadOptions{}); err != nil {
		return report.Load{}, err
	}
	l := report.Load{Label: label, Bytes: fi.Size()}
	st, err := s.cl.WaitLoad(s.ctx, rdd, 500*time.Millisecond, func(st srddclient.LoadStatus) {
		if st.State == "running" {
			l.Progress = append(l.Progress, fmt.Sprintf("%.0f%% %d rows %.0f rows/s", st.Percent, st.Rows, st.RowsPerSec))
		}
	})
	if err != nil {
		return l, err
	}
	l.Rows, l.Seconds, l.RowsPerSec, l.Finished = st.Rows, st.Seconds, st.RowsPerSec, time.Now()
	fmt.Printf("load %-10s %d rows in %.1f s: %.0f rows/s\n", label, l.Rows, l.Seconds, l.RowsPerSec)
	s.res.Loads = append(s.res.Loads, l)
	return l, nil
}

// warm reads keys [0, n) of rdd once, in batches, so they are cached.
func (s *suite) warm(rdd string, n int) error {
	const batch = 5000
	for i := 0; i < n; i += batch {
		keys := make([]string, 0, batch)
		for k := i; k < min(i+batch, n); k++ {
			keys = append(keys, loadgen.KeyName("", k))
		}
		if _, missing, err := s.cl.GetMany(s.ctx, rdd, keys); err != nil {
			return err
		} else if len(missing) > 0 {
			return fmt.Errorf("warming %s: %d keys missing, first %q", rdd, len(missing), missing[0])
		}
	}
	return nil
}

// ------------------------------------------------------------ steps

func (s *suite) noopRuns() error {
	for _, c := range []int{8, 64} {
		t := loadgen.NewHTTPGet("noop", s.noopAddr, "/noop", c)
		s.run(fmt.Sprintf("noop-c%d", c), s.cfg("noop", c), t)
		t.Close()
	}
	return nil
}

func (s *suite) srdd100k() error {
	path := filepath.Join(s.tmp, "100k.jsonl")
	if _, err := s.writeJSONL(path, s.keys); err != nil {
		return err
	}
	for _, name := range []string{"kv100k", "kv100kb"} {
		if err := s.createRDD(name, "0"); err != nil {
			return err
		}
		if _, err := s.load("100k jsonl", name, path); err != nil {
			return err
		}
	}
	// Cold: every key read once, in a fixed scattered order, right after the
	// load (a load leaves nothing cached): each get needs a Spark job.
	t := loadgen.NewSRDD(s.srddAddr, "kv100k", 64)
	defer t.Close()
	c8 := s.cfg("cold", 8)
	c8.Dist = "sequential"
	r := s.run("get-cold-c8", c8, t)
	c64 := s.cfg("cold", 64)
	c64.Dist, c64.SeqStart = "sequential", r.KeysUsed
	s.run("get-cold-c64", c64, t)
	tb := loadgen.NewSRDD(s.srddAddr, "kv100kb", 64)
	defer tb.Close()
	cb := s.cfg("cold", 64)
	cb.Dist, cb.Batch, cb.Duration = "sequential", 16, s.duration/2
	s.run("get-cold-batch-c64", cb, tb)

	if err := s.warm("kv100k", s.keys); err != nil {
		return err
	}
	s.getsAndSets("get-cached", "cached", t)
	mixed := s.cfg("mixed", 64)
	mixed.Dist, mixed.ReadRatio = "zipfian", 0.9
	s.run("mixed-90-10-zipfian-c64", mixed, t)
	return nil
}

// getsAndSets runs gets of scenario getScenario at 8 and 64 clients (runs
// named get+"-c8" and get+"-c64"), then sets (set-c8, set-c64), against t:
// the runs srdd and redis both have.
func (s *suite) getsAndSets(get, getScenario string, t loadgen.Target) {
	for _, c := range []int{8, 64} {
		s.run(fmt.Sprintf("%s-c%d", get, c), s.cfg(getScenario, c), t)
	}
	for _, c := range []int{8, 64} {
		cfg := s.cfg("set", c)
		cfg.ReadRatio = 0
		s.run(fmt.Sprintf("set-c%d", c), cfg, t)
	}
}

func (s *suite) redisRuns() error {
	r := loadgen.NewRedis(s.redisAddr)
	defer r.Close()
	if err := r.Load("", s.keys, s.valueSize); err != nil {
		return err
	}
	s.getsAndSets("get", "get", r)
	for _, test := range []string{"get", "set"} {
		for _, c := range []int{8, 64} {
			if rb, ok := s.redisBenchmark(s.redisAddr, test, c, 0); ok {
				s.res.Redis = append(s.res.Redis, rb)
			}
		}
	}
	return nil
}

// redisBenchmark runs redis-benchmark's test (get or set) at addr with c
// clients over s.keys random keys (key:__rand_int__), with -P pipeline
// if pipeline > 0. A failed run is a note, and ok is false.
func (s *suite) redisBenchmark(addr, test string, c, pipeline int) (rb report.RedisBench, ok bool) {
	host, port, _ := strings.Cut(addr, ":")
	n := 200_000
	if s.quick {
		n = 50_000
	}
	if pipeline > 1 {
		n *= 4
	}
	args := []string{"-h", host, "-p", port, "-t", test, "-n", strconv.Itoa(n), "-c", strconv.Itoa(c),
		"-d", strconv.Itoa(s.valueSize), "-r", strconv.Itoa(s.keys), "--csv"}
	if pipeline > 0 {
		args = append(args, "-P", strconv.Itoa(pipeline))
	}
	out, err := exec.Command(s.redisBench, args...).CombinedOutput()
	if err != nil {
		s.note("redis-benchmark %s: %v: %s", strings.Join(args, " "), err, out)
		return rb, false
	}
	if rb, err = parseRedisBenchmark(string(out)); err != nil {
		s.note("redis-benchmark output: %v", err)
		return rb, false
	}
	rb.Clients, rb.Requests, rb.Pipeline, rb.CmdLine = c, n, pipeline, "redis-benchmark "+strings.Join(args, " ")
	fmt.Printf("redis-benchmark %-4s c=%-3d P=%-2d %9.0f rps p50 %.3f p99 %.3f ms\n", rb.Test, c, pipeline, rb.RPS, rb.P50Ms, rb.P99Ms)
	return rb, true
}

// redisPortRuns is issue 26's benchmark: redis-benchmark GET and SET at
// 64 clients, with -P 1 and -P 16, against srdd's Redis port on RDD
// "key" (redis-benchmark's keyspace key:__rand_int__), in memory mode
// and in durable mode, and against redis-server in the same run.
func (s *suite) redisPortRuns() error {
	if s.redisAddr == "" {
		return errors.New("the redisport step needs redis-server (the redis step starts it)")
	}
	for _, mode := range []string{"memory", "durable"} {
		if err := s.cl.DropRDD(s.ctx, "key"); err != nil && !strings.Contains(err.Error(), "rdd_not_found") {
			return err
		}
		if _, err := s.cl.CreateRDDMode(s.ctx, "key", "0", mode); err != nil {
			return err
		}
		// Every key of the keyspace exists before the gets.
		if _, ok := s.redisBenchmark(s.srddRedis, "set", 64, 16); !ok {
			return fmt.Errorf("cannot fill RDD key (%s) through the Redis port", mode)
		}
		for _, test := range []string{"get", "set"} {
			for _, p := range []int{1, 16} {
				if mode == "memory" {
					if rb, ok := s.redisBenchmark(s.redisAddr, test, 64, p); ok {
						rb.Target = "redis-server"
						s.res.Redis = append(s.res.Redis, rb)
					}
				}
				if rb, ok := s.redisBenchmark(s.srddRedis, test, 64, p); ok {
					rb.Target, rb.Mode = "srdd", mode
					s.res.Redis = append(s.res.Redis, rb)
				}
			}
		}
	}
	return s.cl.DropRDD(s.ctx, "key")
}

// parseRedisBenchmark reads redis-benchmark --csv output.
func parseRedisBenchmark(out string) (report.RedisBench, error) {
	var header []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(strings.TrimSpace(line), ",")
		for i := range f {
			f[i] = strings.Trim(f[i], `"`)
		}
		if len(f) < 2 {
			continue
		}
		if f[0] == "test" {
			header = f
			continue
		}
		rb := report.RedisBench{Test: f[0]}
		for i, v := range f {
			x, _ := strconv.ParseFloat(v, 64)
			name := ""
			if i < len(header) {
				name = header[i]
			} else if i == 1 {
				name = "rps"
			}
			switch name {
			case "rps":
				rb.RPS = x
			case "p50_latency_ms":
				rb.P50Ms = x
			case "p99_latency_ms":
				rb.P99Ms = x
			}
		}
		if rb.RPS > 0 {
			return rb, nil
		}
	}
	return report.RedisBench{}, fmt.Errorf("no result line in %q", out)
}

// seedCode is the article's ShareableRdd, verbatim.
const seedCode = "class ShareableRdd():\n\n" +
	"  def __init__(self):\n    self.data = sc.parallelize([])\n\n" +
	"  def get(self, key):\n    return self.data.filter(lambda row: row[0] == key).take(1)\n\n" +
	"  def set(self, key, value):\n    new_key = sc.parallelize([[key, value]])\n    self.data = self.data.union(new_key)\n"

func (s *suite) seedRuns() error {
	// Session 0 of the seed's own node (see the step in suiteCmd).
	sid, err := s.createSession(`{"kind":"pyspark","name":"seed"}`)
	if err != nil {
		return err
	}
	seed := loadgen.NewSeed(s.srddAddr, sid, "", 8)
	defer seed.Close()
	if _, err := seed.Run(seedCode); err != nil {
		return err
	}
	counts := []int{10, 100, 300, 1000}
	if s.quick {
		counts = []int{10, 100}
	}
	value := strings.Trim(string(loadgen.Value(s.valueSize, 0)), `"`)
	for _, n := range counts {
		v := fmt.Sprintf("seed_%d", n)
		// Filled with the wrapper's own set(), a statement per 500 keys, so
		// the lineage is exactly what n separate set() calls build.
		if _, err := seed.Run(v + " = ShareableRdd()"); err != nil {
			return err
		}
		for i := 0; i < n; i += 500 {
			code := fmt.Sprintf("for _i in range(%d, %d):\n  %s.set('key:%%08d' %% _i, %q)", i, min(i+500, n), v, value)
			if _, err := seed.Run(code); err != nil {
				return err
			}
		}
		name := fmt.Sprintf("small%d", n)
		if err := s.createRDD(name, strconv.FormatInt(sid, 10)); err != nil {
			return err
		}
		items := map[string]json.RawMessage{}
		for i := 0; i < n; i++ {
			items[loadgen.KeyName("", i)] = loadgen.Value(s.valueSize, i%256)
			if len(items) == 5000 || i == n-1 {
				if _, err := s.cl.SetMany(s.ctx, name, items); err != nil {
					return err
				}
				items = map[string]json.RawMessage{}
			}
		}
		seed.Var = v
		cfg := s.cfg("seed", 1)
		cfg.Keys, cfg.Warmup, cfg.Duration = n, 0, 20*time.Second
		if s.quick {
			cfg.Duration = 5 * time.Second
		}
		sr := s.run(fmt.Sprintf("seed-get-%d-c1", n), cfg, seed)
		s.res.Curve = append(s.res.Curve, report.CurvePoint{Target: "seed ShareableRdd (statements)", Keys: n, P50Ms: sr.Latency.P50, MeanMs: sr.Latency.Mean, Ops: sr.Ops})
		t := loadgen.NewSRDD(s.srddAddr, name, 8)
		cfg.Duration, cfg.Warmup = 3*time.Second, time.Second
		dr := s.run(fmt.Sprintf("get-%d-c1", n), cfg, t)
		s.res.Curve = append(s.res.Curve, report.CurvePoint{Target: "srdd REST get", Keys: n, P50Ms: dr.Latency.P50, MeanMs: dr.Latency.Mean, Ops: dr.Ops})
		if n == 1000 {
			// The session runs statements one at a time and a seed get takes
			// tens of seconds here, so 8 clients get 8 gets in all.
			c8 := s.cfg("seed", 8)
			c8.Keys, c8.Warmup, c8.Duration, c8.Ops = n, 0, 0, 8
			s.run("seed-get-1000-c8", c8, seed)
			c8.Duration, c8.Warmup, c8.Ops = s.duration, s.warmup, 0
			s.run("get-1000-c8", c8, t)
		}
		t.Close()
		if sr.Errors > 0 && sr.Ops == 0 {
			s.note("the seed could not serve gets at %d keys; larger counts skipped", n)
			break
		}
	}
	return nil
}

func (s *suite) srdd1M() error {
	const n = 1_000_000
	path := filepath.Join(s.tmp, "1m.jsonl")
	if _, err := s.writeJSONL(path, n); err != nil {
		return err
	}
	if err := s.createRDD("kv1m", "0"); err != nil {
		return err
	}
	if _, err := s.load("1M jsonl", "kv1m", path); err != nil {
		return err
	}
	t := loadgen.NewSRDD(s.srddAddr, "kv1m", 64)
	defer t.Close()
	cold := s.cfg("cold", 8)
	cold.Keys, cold.Dist = n, "sequential"
	s.run("get-cold-c8-1m", cold, t)
	// Cached: the same 100k keys as at 100k (1M values do not fit the
	// default cache; a hot set does).
	if err := s.warm("kv1m", s.keys); err != nil {
		return err
	}
	for _, c := range []int{8, 64} {
		s.run(fmt.Sprintf("get-cached-c%d-1m", c), s.cfg("cached", c), t)
	}
	c1 := s.cfg("cached", 1)
	c1.Duration, c1.Warmup = 3*time.Second, time.Second
	for _, x := range []struct {
		rdd  string
		keys int
	}{{"kv100k", s.keys}, {"kv1m", n}} {
		tt := loadgen.NewSRDD(s.srddAddr, x.rdd, 1)
		r := s.run(fmt.Sprintf("get-cached-c1-%d", x.keys), c1, tt)
		s.res.Curve = append(s.res.Curve, report.CurvePoint{Target: "srdd REST get", Keys: x.keys, P50Ms: r.Latency.P50, MeanMs: r.Latency.Mean, Ops: r.Ops})
		tt.Close()
	}
	return nil
}

// memory1M writes 1M keys into an RDD of a fresh session and measures
// that session's interpreter before and after.
func (s *suite) memory1M() error {
	const n = 1_000_000
	sid, err := s.createSession(`{"kind":"pyspark","name":"mem"}`)
	if err != nil {
		return err
	}
	if err := s.createRDD("sets1m", strconv.FormatInt(sid, 10)); err != nil {
		return err
	}
	raw := float64(n*(len(loadgen.KeyName("", 0))+s.valueSize)) / (1 << 20)
	measure := func(label string, keys int64) {
		m, err := interpreterMemory(s.srddPid, sid)
		if err != nil {
			s.note("memory %s: %v", label, err)
			return
		}
		m.Label, m.Keys = label, keys
		if keys > 0 {
			m.RawMB = raw * float64(keys) / n
		}
		fmt.Printf("memory %-30s driver %.0f MiB, JVM %.0f MiB, workers %.0f MiB\n", label, m.DriverMB, m.JVMMB, m.WorkersMB)
		s.res.Memory = append(s.res.Memory, m)
	}
	measure("empty session", 0)
	t := loadgen.NewSRDD(s.srddAddr, "sets1m", 64)
	defer t.Close()
	cfg := s.cfg("set", 64)
	cfg.Keys, cfg.Dist, cfg.ReadRatio, cfg.Ops, cfg.Duration, cfg.Warmup = n, "sequential", 0, n, 0, 0
	r := s.run("set-1m-sequential-c64", cfg, t)
	if r.Ops < n {
		return fmt.Errorf("only %d of %d sets succeeded", r.Ops, n)
	}
	measure("after 1M sets", n)
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		d, err := s.cl.DescribeRDD(s.ctx, "sets1m")
		if err != nil {
			return err
		}
		if c, _ := d.Engine["compacting"].(bool); !c {
			break
		}
		time.Sleep(time.Second)
	}
	measure("after 1M sets, compaction idle", n)
	if cnt, err := s.cl.Count(s.ctx, "sets1m"); err != nil || cnt != n {
		return errors.Join(err, fmt.Errorf("count after 1M sets = %d", cnt))
	}
	return nil
}

// waitForIdle waits until the 1-minute load average drops below 1 (other
// work on the machine skews every number), at most for d.
func waitForIdle(d time.Duration) {
	deadline := time.Now().Add(d)
	for {
		b, err := os.ReadFile("/proc/loadavg")
		if err != nil {
			return
		}
		load, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
		if load < 1 || time.Now().After(deadline) {
			return
		}
		fmt.Printf("waiting for the machine to be idle (load average %.2f)\n", load)
		time.Sleep(15 * time.Second)
	}
}
