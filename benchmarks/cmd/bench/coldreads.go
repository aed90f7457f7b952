package main

// Issue 16's steps: cold reads (single gets and multigets), cached-get
// tail latency alone and while a compaction or a bulk load runs, memory of
// the interpreter's whole process tree, 10M keys, and the same against a
// standalone Spark master + worker started from pyspark's own spark-class.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/srdd/srdd/benchmarks/loadgen"
	"github.com/srdd/srdd/benchmarks/report"
	srddclient "github.com/srdd/srdd/client/go"
	"github.com/srdd/srdd/internal/netutil"
)

// dataset makes sure rdd (in session sid) holds keys [0, n), loading a
// JSON Lines file of them once; it returns false if it was already there.
func (s *suite) dataset(rdd string, sid int64, n int, label string) error {
	if s.loaded == nil {
		s.loaded = map[string]bool{}
	}
	if s.loaded[rdd] {
		return nil
	}
	path := filepath.Join(s.tmp, fmt.Sprintf("%d.jsonl", n))
	if _, err := os.Stat(path); err != nil {
		if _, err := s.writeJSONL(path, n); err != nil {
			return err
		}
	}
	if err := s.createRDD(rdd, strconv.FormatInt(sid, 10)); err != nil {
		return err
	}
	if _, err := s.load(label, rdd, path); err != nil {
		return err
	}
	s.loaded[rdd] = true
	return nil
}

// coldReads measures reads of keys never read before on rdd (n keys):
// single gets at 8 clients, and multigets of 100 and 10,000 keys from one
// client, each run on keys the earlier runs did not touch.
func (s *suite) coldReads(rdd string, n int, tag string) {
	t := loadgen.NewSRDD(s.srddAddr, rdd, 64)
	defer t.Close()
	s.note("load average before the cold reads %s: %s", tag, loadAvg())
	c8 := s.cfg("cold", 8)
	c8.Keys, c8.Dist = n, "sequential"
	c8.Duration = min(c8.Duration, 10*time.Second)
	r := s.run("cold-get-c8"+tag, c8, t)
	next := r.KeysUsed
	for _, b := range []struct{ batch, ops int }{{100, 100}, {10_000, 15}} {
		if s.quick {
			b.ops = max(5, b.ops/4)
		}
		if s.mgetOps > 0 {
			b.ops = s.mgetOps
		}
		if next+int64(b.batch*b.ops) > int64(n) {
			next = 0
		}
		cfg := s.cfg("cold", 1)
		cfg.Keys, cfg.Dist, cfg.SeqStart, cfg.Batch = n, "sequential", next, b.batch
		cfg.Ops, cfg.Duration, cfg.Warmup = b.ops, 0, 0
		r := s.run(fmt.Sprintf("cold-mget-%d%s", b.batch, tag), cfg, t)
		next += r.KeysUsed
	}
}

// during runs 64 clients of cached gets on rdd until work returns (at
// least the warm-up plus two seconds, at most 10 minutes).
func (s *suite) during(scenario, rdd string, work func() error) {
	t := loadgen.NewSRDD(s.srddAddr, rdd, 64)
	defer t.Close()
	ctx, cancel := context.WithCancel(s.ctx)
	cfg := s.cfg("cached", 64)
	cfg.Warmup, cfg.Duration = time.Second, 10*time.Minute
	done := make(chan loadgen.Result, 1)
	go func() {
		r, err := loadgen.Run(ctx, scenario, cfg, t)
		if err != nil && !errors.Is(err, context.Canceled) { // (cancel ends the run)
			s.note("%s: %v", scenario, err)
		}
		done <- r
	}()
	time.Sleep(cfg.Warmup + time.Second)
	began := time.Now()
	if err := work(); err != nil {
		s.note("%s: the concurrent work failed: %v", scenario, err)
	}
	s.note("%s: the concurrent work took %.1f s (load average %s)", scenario, time.Since(began).Seconds(), loadAvg())
	cancel()
	r := <-done
	printResult(r)
	s.res.Runs = append(s.res.Runs, r)
}

// tail measures cached gets at 64 clients on rdd (n keys loaded; the
// first 100k read once so they are cached): alone, during a compaction
// of the RDD, and during a bulk load of another RDD of the session.
func (s *suite) tail(rdd string, sid int64, n int, tag string) error {
	if err := s.warm(rdd, min(n, s.keys)); err != nil {
		return err
	}
	s.note("load average before the cached runs %s: %s", tag, loadAvg())
	t := loadgen.NewSRDD(s.srddAddr, rdd, 64)
	s.run("cached-get-c64"+tag, s.cfg("cached", 64), t)
	t.Close()
	// A compaction: pending writes of 200k new keys (below the automatic
	// threshold of a quarter of the base, so nothing starts by itself),
	// then compact() from a statement while the readers run.
	items := map[string]json.RawMessage{}
	pending := min(200_000, n/5)
	for i := 0; i < pending; i++ {
		items[loadgen.KeyName("tail:", i)] = loadgen.Value(s.valueSize, i%256)
		if len(items) == 5000 || i == pending-1 {
			if _, err := s.cl.SetMany(s.ctx, rdd, items); err != nil {
				return err
			}
			items = map[string]json.RawMessage{}
		}
	}
	stmt := loadgen.NewSeed(s.srddAddr, sid, "", 1)
	defer stmt.Close()
	s.during("cached-get-c64-compaction"+tag, rdd, func() error {
		_, err := stmt.Run(rdd + ".compact()")
		return err
	})
	// A bulk load of 1M rows into another RDD of the same session.
	path := filepath.Join(s.tmp, "1000000.jsonl")
	if _, err := os.Stat(path); err != nil {
		if _, err := s.writeJSONL(path, 1_000_000); err != nil {
			return err
		}
	}
	other := "bulk" + strings.NewReplacer("@", "_", "-", "_").Replace(tag)
	if err := s.createRDD(other, strconv.FormatInt(sid, 10)); err != nil {
		return err
	}
	s.during("cached-get-c64-load"+tag, rdd, func() error {
		_, err := s.load("1M jsonl during gets", other, path)
		return err
	})
	if err := s.cl.DropRDD(s.ctx, other); err != nil {
		s.note("drop %s: %v", other, err)
	}
	return nil
}

// memoryOf records the interpreter tree of session sid holding keys.
func (s *suite) memoryOf(sid int64, label string, keys int64) {
	m, err := interpreterMemory(s.srddPid, sid)
	if err != nil {
		s.note("memory %s: %v", label, err)
		return
	}
	m.Label, m.Keys = label, keys
	m.RawMB = float64(keys) * float64(len(loadgen.KeyName("", 0))+s.valueSize) / (1 << 20)
	fmt.Printf("memory %-30s driver %.0f MiB, JVM %.0f MiB, workers %.0f MiB\n", label, m.DriverMB, m.JVMMB, m.WorkersMB)
	s.res.Memory = append(s.res.Memory, m)
}

// issue16At runs the cold-read, tail and memory steps on a fresh session
// holding n loaded keys.
func (s *suite) issue16At(n int, tag string, parts map[string]bool) error {
	return s.issue16In(-1, n, tag, parts)
}

// issue16In is issue16At in session sid (-1: a fresh one).
func (s *suite) issue16In(sid int64, n int, tag string, parts map[string]bool) error {
	if sid < 0 {
		var err error
		sid, err = s.createSession(fmt.Sprintf(`{"kind":"pyspark","name":"i16%s"}`, strings.NewReplacer("@", "_", "-", "_").Replace(tag)))
		if err != nil {
			return err
		}
	}
	s.memoryOf(sid, "empty session"+tag, 0)
	rdd := "cold" + strings.NewReplacer("@", "_", "-", "_").Replace(tag)
	if err := s.dataset(rdd, sid, n, fmt.Sprintf("%s jsonl%s", countLabel(n), tag)); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	s.memoryOf(sid, "after loading "+countLabel(n)+tag, int64(n))
	if parts["coldget"] {
		s.coldReads(rdd, n, tag)
	}
	if parts["tail"] {
		if err := s.tail(rdd, sid, n, tag); err != nil {
			return err
		}
		s.memoryOf(sid, "after the tail runs"+tag, int64(n))
	}
	return s.cl.DropRDD(s.ctx, rdd)
}

func countLabel(n int) string {
	switch {
	case n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}

// standalone starts a Spark master and one worker from pyspark's own
// spark-class on 127.0.0.1, and a second srdd node whose sessions use it,
// then runs the issue-16 steps against that node.
func (s *suite) standalone(python string, srddBin string, n int, parts map[string]bool) error {
	sparkClass, err := sparkClassOf(python)
	if err != nil {
		return err
	}
	port, err := netutil.FreePort()
	if err != nil {
		return err
	}
	master, _, err := startChild("spark-master", func(l string) bool { return strings.Contains(l, "I have been elected leader") },
		3*time.Minute, sparkClass, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--webui-port", "0")
	if err != nil {
		return err
	}
	defer master.stop()
	url := fmt.Sprintf("spark://127.0.0.1:%d", port)
	worker, _, err := startChild("spark-worker", func(l string) bool { return strings.Contains(l, "Successfully registered with master") },
		3*time.Minute, sparkClass, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "2", "--memory", "4g",
		"--webui-port", "0", "--work-dir", filepath.Join(s.tmp, "spark-work"), url)
	if err != nil {
		return err
	}
	defer worker.stop()
	s.res.Commands = append(s.res.Commands, sparkClass+" org.apache.spark.deploy.master.Master --host 127.0.0.1 --port "+strconv.Itoa(port),
		sparkClass+" org.apache.spark.deploy.worker.Worker --host 127.0.0.1 --cores 2 --memory 4g "+url)
	return s.onNode(srddBin, python, "standalone", []string{"--spark-master", url, "--spark-conf", "spark.executor.memory=2g"}, func() error {
		if id, err := s.createSession(`{"kind":"pyspark"}`); err != nil {
			return err
		} else if id != 0 {
			return fmt.Errorf("the first session got id %d", id)
		}
		// Session 0 only: a standalone application takes every core of the
		// worker, so a second session's application would get no executor.
		return s.issue16In(0, n, "@"+countLabel(n)+"-standalone", parts)
	})
}

// onNode starts a second srdd node (the suite's usual flags plus extra,
// data in data-NAME) and runs f with the suite pointed at it.
func (s *suite) onNode(srddBin, python, name string, extra []string, f func() error) error {
	args := append([]string{"server", "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
		"--data-dir", filepath.Join(s.tmp, "data-"+name), "--python", python, "--log-level", "warn",
		"--file-root", s.tmp}, extra...)
	node, line, err := startChild("srdd-"+name, func(l string) bool { return strings.Contains(l, "serving on http://") }, 2*time.Minute, srddBin, args...)
	if err != nil {
		return err
	}
	defer node.stop()
	s.res.Commands = append(s.res.Commands, srddBin+" "+strings.Join(args, " "))
	saved := [...]any{s.srddAddr, s.srddPid, s.cl, s.loaded}
	defer func() {
		s.srddAddr, s.srddPid, s.cl, s.loaded = saved[0].(string), saved[1].(int), saved[2].(*srddclient.Client), saved[3].(map[string]bool)
	}()
	s.srddAddr = strings.Fields(strings.SplitN(line, "http://", 2)[1])[0]
	s.srddPid = node.cmd.Process.Pid
	s.cl = srddclient.New(s.srddAddr)
	s.loaded = nil
	return f()
}

// sparkClassOf finds bin/spark-class in the pyspark package of python.
func sparkClassOf(python string) (string, error) {
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(filepath.Dir(python)), "lib", "python3*", "site-packages", "pyspark", "bin", "spark-class"))
	if len(matches) == 0 {
		return "", fmt.Errorf("no pyspark/bin/spark-class next to %s", python)
	}
	return matches[0], nil
}

// compareCmd draws the before/after latency CDFs of two suite runs' issue-16
// steps (bench compare --before A/results.json --after B/results.json).
func compareCmd(args []string) error {
	fs := flag.NewFlagSet("compare", flag.ExitOnError)
	before := fs.String("before", "", "results.json of the run before")
	after := fs.String("after", "", "results.json of the run after")
	tag := fs.String("tag", "@1M", "data-set tag of the runs")
	out := fs.String("png", "compare.png", "chart to write")
	title := fs.String("title", "Cold reads before (dashed) and after (solid)", "chart title")
	_ = fs.Parse(args)
	b, err := report.LoadResults(*before)
	if err != nil {
		return err
	}
	a, err := report.LoadResults(*after)
	if err != nil {
		return err
	}
	ok, err := report.CompareChart(b, a, *tag, *title, *out)
	if err == nil && !ok {
		err = fmt.Errorf("no issue-16 runs with tag %s in either file", *tag)
	}
	return err
}
