package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/srdd/srdd/benchmarks/loadgen"
	srddclient "github.com/srdd/srdd/client/go"
	"github.com/srdd/srdd/internal/netutil"
	"github.com/srdd/srdd/internal/peerid/peeridtest"
)

// durableResults is what `bench durable` measured (issue 6's targets).
type durableResults struct {
	Generated string            `json:"generated"`
	Machine   any               `json:"machine"`
	Commands  []string          `json:"commands"`
	Runs      []*loadgen.Result `json:"runs"`
	Recovery  struct {
		Keys            int     `json:"keys"`
		LoadSeconds     float64 `json:"load_seconds"`
		CheckpointRows  int64   `json:"checkpoint_rows"`
		TailWrites      int     `json:"tail_writes"`
		SecondsToReady  float64 `json:"seconds_to_ready"`
		SecondsToRead   float64 `json:"seconds_to_first_read"`
		KeysAfter       int64   `json:"keys_after"`
		InterpreterPIDs []int   `json:"killed_pids"`
	} `json:"recovery"`
	Soak struct {
		Seconds         float64 `json:"seconds"`
		Writes          int64   `json:"writes"`
		WritesPerSec    float64 `json:"writes_per_sec"`
		CheckpointEvery int     `json:"checkpoint_every"`
		EntryBytes      float64 `json:"entry_bytes"` // bytes of one write on the wire (key + value)
		BoundBytes      float64 `json:"bound_bytes"` // 2 x checkpoint interval x entry size
		MaxRaftDB       int64   `json:"max_raft_db_bytes"`
		FinalRaftDB     int64   `json:"final_raft_db_bytes"`
		Samples         []int64 `json:"raft_db_bytes_samples"`
		Checkpoints     uint64  `json:"last_checkpoint_index"`
	} `json:"soak"`
	Failover *failoverResults `json:"failover,omitempty"`
	Notes    []string         `json:"notes"`
}

type benchNode struct {
	id, http string
	dir      string
	c        *child
}

// durableCmd measures durable RDDs on a 3-node cluster on loopback:
// durable set latency and throughput, recovery of a 1M-key RDD after its
// interpreter is killed, and the Raft log's size in a write soak.
func durableCmd(args []string) error {
	fs := flag.NewFlagSet("durable", flag.ExitOnError)
	srddBin := fs.String("srdd", "bin/srdd", "srdd binary")
	python := fs.String("python", ".venv/bin/python", "Python with pyspark")
	out := fs.String("out", "benchmarks", "directory for DURABLE.md and results/durable.json")
	recoveryKeys := fs.Int("recovery-keys", 1_000_000, "keys in the RDD whose interpreter is killed")
	soak := fs.Duration("soak", 10*time.Minute, "length of the write soak")
	every := fs.Int("checkpoint-every", 100_000, "--checkpoint-every of the nodes")
	dur := fs.Duration("duration", 15*time.Second, "measured time of each latency/throughput run")
	skipRecovery := fs.Bool("skip-recovery", false, "skip the recovery measurement")
	peerTLS := fs.String("peer-tls", "off", "peer mutual TLS between the nodes: off, on, or compare (the latency runs on a cluster without, then one with, peer TLS; writes PEERTLS.md and results/peertls.json, and nothing else is measured)")
	failoverKills := fs.Int("failover-kills", 5, "kills of the owner's machine in the failover step (0: skip it)")
	failoverOnly := fs.Bool("failover-only", false, "measure only the failover step; the rest comes from --keep")
	keep := fs.String("keep", "", "a results/durable.json of an earlier run: its recovery and soak figures are kept for the parts skipped now (--skip-recovery, --soak 0), and its runs are listed as earlier")
	_ = fs.Parse(args)

	tmp, err := os.MkdirTemp("", "srdd-bench-durable-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	res := &durableResults{Generated: time.Now().UTC().Format("2006-01-02 15:04 UTC"), Machine: machineInfo()}
	switch *peerTLS {
	case "off", "on":
	case "compare":
		return comparePeerTLS(tmp, *srddBin, *python, *every, *dur, *out)
	default:
		return fmt.Errorf("--peer-tls %q: want off, on or compare", *peerTLS)
	}
	if *failoverOnly {
		if *keep == "" {
			return fmt.Errorf("--failover-only needs --keep (the rest of DURABLE.md comes from there)")
		}
		b, err := os.ReadFile(*keep)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, res); err != nil {
			return err
		}
		res.Generated, res.Machine = time.Now().UTC().Format("2006-01-02 15:04 UTC"), machineInfo()
		res.Notes = append(res.Notes, "this run measured the failover step only; the rest is from the run before")
		if res.Failover, err = measureFailover(tmp, *srddBin, *python, *recoveryKeys, *failoverKills, *dur); err != nil {
			return err
		}
		return writeDurable(res, *out)
	}
	if *failoverKills > 0 {
		// First, on a cluster of its own (node-local checkpoints).
		if res.Failover, err = measureFailover(tmp, *srddBin, *python, *recoveryKeys, *failoverKills, *dur); err != nil {
			return err
		}
	}
	nodes, cmds, stop, err := startBenchCluster(filepath.Join(tmp, "c"), *srddBin, *python, *every, *peerTLS == "on")
	defer stop()
	if err != nil {
		return err
	}
	res.Commands = append(res.Commands, cmds...)
	ctx := context.Background()
	cl := srddclient.New(nodes[0].http)
	runs, err := latencyRuns(ctx, cl, nodes, *dur, "")
	res.Runs = append(res.Runs, runs...)
	if err != nil {
		return err
	}
	ownerOf := func(name string) (*benchNode, srddclient.RDD, error) {
		r, err := cl.DescribeRDD(ctx, name)
		if err != nil {
			return nil, r, err
		}
		for _, n := range nodes {
			if n.id == r.Node {
				return n, r, nil
			}
		}
		return nil, r, fmt.Errorf("rdd %s on unknown node %q", name, r.Node)
	}
	waitReady := func(name string, limit time.Duration) (srddclient.RDD, error) {
		deadline := time.Now().Add(limit)
		for {
			r, err := cl.DescribeRDD(ctx, name)
			if err == nil && r.State == "ready" {
				return r, nil
			}
			if time.Now().After(deadline) {
				return r, fmt.Errorf("%s not ready within %s (state %q, err %v)", name, limit, r.State, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	var earlier *durableResults
	if *keep != "" {
		b, err := os.ReadFile(*keep)
		if err != nil {
			return err
		}
		earlier = &durableResults{}
		if err := json.Unmarshal(b, earlier); err != nil {
			return err
		}
		for _, r := range earlier.Runs {
			r.Scenario = "earlier: " + r.Scenario
		}
		res.Notes = append(res.Notes, fmt.Sprintf("rows marked \"earlier\" and the parts skipped in this run come from the run of %s (%s)", earlier.Generated, *keep))
	}
	if *skipRecovery && earlier != nil {
		res.Recovery = earlier.Recovery
	} else if !*skipRecovery {
		if err := measureRecovery(ctx, cl, res, tmp, *recoveryKeys, ownerOf, waitReady); err != nil {
			return err
		}
	}
	if *soak <= 0 {
		if earlier != nil {
			res.Soak = earlier.Soak
			res.Runs = append(res.Runs, earlier.Runs...)
		}
		res.Notes = append(res.Notes, fmt.Sprintf("GOMAXPROCS %d; the 3 nodes, their 3 JVMs and the load generator share the machine", runtime.GOMAXPROCS(0)))
		return writeDurable(res, *out)
	}
	return soakRun(ctx, cl, res, nodes, *soak, *every, *out, ownerOf)
}

// measureRecovery loads rk keys into a durable RDD, adds a log tail, kills
// its interpreter and times the rebuild.
func measureRecovery(ctx context.Context, cl *srddclient.Client, res *durableResults, tmp string, rk int,
	ownerOf func(string) (*benchNode, srddclient.RDD, error), waitReady func(string, time.Duration) (srddclient.RDD, error)) error {
	// 2. Recovery of a large RDD after a kill -9 of its interpreter.
	path := filepath.Join(tmp, "recovery.jsonl")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := 0; i < rk; i++ {
		fmt.Fprintf(w, "{\"key\":\"%s\",\"value\":%s}\n", loadgen.KeyName("", i), loadgen.Value(100, i%256))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	f.Close()
	if _, err := cl.CreateRDDMode(ctx, "big", "", "durable"); err != nil {
		return err
	}
	if _, err := waitReady("big", 3*time.Minute); err != nil {
		return err
	}
	began := time.Now()
	if _, err := cl.Load(ctx, "big", path, srddclient.LoadOptions{}); err != nil {
		return err
	}
	if _, err := cl.WaitLoad(ctx, "big", 500*time.Millisecond, nil); err != nil {
		return err
	}
	res.Recovery.LoadSeconds = time.Since(began).Seconds()
	// The load is durable once the checkpoint that follows it is recorded.
	var ckRows int64
	for deadline := time.Now().Add(10 * time.Minute); ; {
		var raw struct {
			Checkpoint *struct{ Rows int64 } `json:"checkpoint"`
		}
		if err := cl.Do(ctx, "GET", "/v1/rdds/big", nil, &raw); err == nil && raw.Checkpoint != nil && raw.Checkpoint.Rows >= int64(rk) {
			ckRows = raw.Checkpoint.Rows
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no checkpoint of big after its load")
		}
		time.Sleep(500 * time.Millisecond)
	}
	res.Recovery.Keys, res.Recovery.CheckpointRows = rk, ckRows
	// A tail after the checkpoint, so the rebuild replays writes too.
	tail := loadgen.Config{Keys: rk, ValueSize: 100, Concurrency: 8, ReadRatio: 0, Dist: "uniform", Ops: 5000, Seed: 7}
	bo, bigRec, err := ownerOf("big")
	if err != nil {
		return err
	}
	t := loadgen.NewSRDD(bo.http, "big", 8)
	if _, err := loadgen.Run(ctx, "recovery-tail", tail, t); err != nil {
		return err
	}
	_ = t.Close()
	var desc struct {
		TailWrites int `json:"tail_writes"`
	}
	_ = cl.Do(ctx, "GET", "/v1/rdds/big", nil, &desc)
	res.Recovery.TailWrites = desc.TailWrites
	pids := interpreterPIDs(bo.c.cmd.Process.Pid, bigRec.Session)
	if len(pids) == 0 {
		return fmt.Errorf("no interpreter of session %d under %s", bigRec.Session, bo.id)
	}
	res.Recovery.InterpreterPIDs = pids
	killed := time.Now()
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// Wait until it moved to a new session and is ready there.
	for {
		r, err := cl.DescribeRDD(ctx, "big")
		if err == nil && r.Session != bigRec.Session && r.State == "ready" {
			res.Recovery.SecondsToReady = time.Since(killed).Seconds()
			if r.Keys != nil {
				res.Recovery.KeysAfter = *r.Keys
			}
			break
		}
		if time.Since(killed) > 10*time.Minute {
			return fmt.Errorf("big not ready 10 min after the kill")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for {
		if v, err := cl.Get(ctx, "big", loadgen.KeyName("", 12345)); err == nil && len(v) > 0 {
			res.Recovery.SecondsToRead = time.Since(killed).Seconds()
			break
		}
		if time.Since(killed) > 11*time.Minute {
			return fmt.Errorf("no read of big 11 min after the kill")
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("recovery of %d keys (+%d tail writes): ready %.1f s after kill -9, first read %.1f s\n",
		rk, res.Recovery.TailWrites, res.Recovery.SecondsToReady, res.Recovery.SecondsToRead)
	return cl.DropRDD(ctx, "big")
}

// soakRun writes for d and samples the size of every node's raft.db.
func soakRun(ctx context.Context, cl *srddclient.Client, res *durableResults, nodes []*benchNode, d time.Duration, every int,
	out string, ownerOf func(string) (*benchNode, srddclient.RDD, error)) error {
	// 3. A write soak: how big does raft.db get?
	owner, _, err := ownerOf("dur")
	if err != nil {
		return err
	}
	soakCfg := loadgen.Config{Keys: 100_000, ValueSize: 100, Concurrency: 16, ReadRatio: 0, Dist: "uniform",
		Duration: d, Seed: 3}
	stop := make(chan struct{})
	samples := make(chan []int64, 1)
	go func() {
		var s []int64
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				samples <- s
				return
			case <-tick.C:
				var max int64
				for _, n := range nodes {
					if fi, err := os.Stat(filepath.Join(n.dir, "raft", "raft.db")); err == nil && fi.Size() > max {
						max = fi.Size()
					}
				}
				s = append(s, max)
			}
		}
	}()
	st := loadgen.NewSRDD(owner.http, "dur", 16)
	sr, err := loadgen.Run(ctx, "durable-soak-c16", soakCfg, st)
	_ = st.Close()
	close(stop)
	res.Soak.Samples = <-samples
	if err != nil {
		return err
	}
	printResult(sr)
	res.Runs = append(res.Runs, &sr)
	res.Soak.Seconds, res.Soak.Writes, res.Soak.WritesPerSec = sr.Seconds, sr.Sets, sr.OpsPerSec
	res.Soak.CheckpointEvery = every
	key := loadgen.KeyName("", 99_999)
	res.Soak.EntryBytes = float64(len(key) + len(loadgen.Value(100, 0)))
	res.Soak.BoundBytes = 2 * float64(every) * res.Soak.EntryBytes
	for _, v := range res.Soak.Samples {
		res.Soak.MaxRaftDB = max(res.Soak.MaxRaftDB, v)
	}
	if n := len(res.Soak.Samples); n > 0 {
		res.Soak.FinalRaftDB = res.Soak.Samples[n-1]
	}
	var ck struct {
		Checkpoint *struct{ Index uint64 } `json:"checkpoint"`
	}
	if err := cl.Do(ctx, "GET", "/v1/rdds/dur", nil, &ck); err == nil && ck.Checkpoint != nil {
		res.Soak.Checkpoints = ck.Checkpoint.Index
	}
	res.Notes = append(res.Notes, fmt.Sprintf("GOMAXPROCS %d; the 3 nodes, their 3 JVMs and the load generator share the machine", runtime.GOMAXPROCS(0)))
	return writeDurable(res, out)
}

// spread sends each client's requests to one of the nodes, round robin.
type spread struct{ ts []loadgen.Target }

func newSpread(nodes []*benchNode, rdd string, clients int) *spread {
	s := &spread{}
	for _, n := range nodes {
		s.ts = append(s.ts, loadgen.NewSRDD(n.http, rdd, clients))
	}
	return s
}

func (s *spread) Name() string { return "srdd-3-nodes" }
func (s *spread) Get(client int, key string) error {
	return s.ts[client%len(s.ts)].Get(client, key)
}
func (s *spread) Set(client int, key string, value []byte) error {
	return s.ts[client%len(s.ts)].Set(client, key, value)
}
func (s *spread) Close() error {
	for _, t := range s.ts {
		_ = t.Close()
	}
	return nil
}

// interpreterPIDs finds the Python interpreter of session sid under root.
func interpreterPIDs(root int, sid int64) []int {
	procs := readProcs()
	want := fmt.Sprintf("--session-id %d ", sid)
	var out []int
	for pid, p := range procs {
		if !strings.Contains(p.cmdline, "srdd_interpreter") || !strings.Contains(p.cmdline+" ", want) {
			continue
		}
		for q := p.ppid; q > 1; q = procs[q].ppid {
			if q == root {
				out = append(out, pid)
				break
			}
			if _, ok := procs[q]; !ok {
				break
			}
		}
	}
	sort.Ints(out)
	return out
}

// writeRaw writes res as indented JSON to out/results/name.
func writeRaw(out, name string, res any) error {
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := os.MkdirAll(filepath.Join(out, "results"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "results", name), b, 0o644)
}

// writeRunsTable writes the Markdown table of durable write runs to sb.
func writeRunsTable(sb *strings.Builder, runs []*loadgen.Result) {
	sb.WriteString("| run | clients | writes | writes/s | p50 ms | p99 ms | p99.9 ms | errors |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range runs {
		fmt.Fprintf(sb, "| %s | %d | %d | %.0f | %.3f | %.3f | %.3f | %d |\n", r.Scenario, r.Config.Concurrency, r.Sets, r.OpsPerSec,
			r.Latency.P50, r.Latency.P99, r.Latency.P999, r.Errors)
	}
}

// startPage writes res to results/RAW under out and starts its Markdown
// page: the title, how it was generated (`bench COMMAND`), the machine
// and the setup, and the table of runs.
func (res *durableResults) startPage(out, raw, title, command, setup string) (*strings.Builder, error) {
	if err := writeRaw(out, raw, res); err != nil {
		return nil, err
	}
	sb := &strings.Builder{}
	mb, _ := json.Marshal(res.Machine)
	fmt.Fprintf(sb, "# %s\n\nGenerated by `go run ./benchmarks/cmd/bench %s` on %s. Raw numbers: `benchmarks/results/%s`.\n\nMachine: `%s`. %s\n\n",
		title, command, res.Generated, raw, mb, setup)
	writeRunsTable(sb, res.Runs)
	return sb, nil
}

// endPage writes the commands and the notes at the end of res's page.
func (res *durableResults) endPage(sb *strings.Builder) {
	fmt.Fprintf(sb, "\nCommands:\n\n```\n%s\n```\n", strings.Join(res.Commands, "\n"))
	for _, n := range res.Notes {
		fmt.Fprintf(sb, "\n- %s", n)
	}
	sb.WriteString("\n")
}

func writeDurable(res *durableResults, out string) error {
	sb, err := res.startPage(out, "durable.json", "Durable RDDs: measured", "durable",
		"Three srdd nodes on loopback (each with its own Spark driver, `local[2]`), the load generator on the same cores.")
	if err != nil {
		return err
	}
	p := func(format string, a ...any) { fmt.Fprintf(sb, format, a...) }
	rc := res.Recovery
	p("\n## Recovery after kill -9 of the owner's interpreter\n\n%d keys loaded from JSON Lines in %.1f s (checkpointed: %d rows), then %d writes in the log tail. After the kill: ready again in **%.1f s**, first successful read %.1f s; keys after: %d.\n",
		rc.Keys, rc.LoadSeconds, rc.CheckpointRows, rc.TailWrites, rc.SecondsToReady, rc.SecondsToRead, rc.KeysAfter)
	sk := res.Soak
	p("\n## Write soak: on-disk Raft log\n\n%.0f s of sets at 16 clients: %d writes (%.0f/s), checkpoint every %d writes (last checkpoint at log index %d). Largest raft.db of the 3 nodes: **%.1f MiB** (at the end %.1f MiB); 2 x checkpoint interval x entry size (%.0f bytes of key and value) = %.1f MiB.\n\nraft.db every 10 s (MiB):",
		sk.Seconds, sk.Writes, sk.WritesPerSec, sk.CheckpointEvery, sk.Checkpoints, float64(sk.MaxRaftDB)/(1<<20), float64(sk.FinalRaftDB)/(1<<20), sk.EntryBytes, sk.BoundBytes/(1<<20))
	for _, v := range sk.Samples {
		p(" %.1f", float64(v)/(1<<20))
	}
	p("\n")
	writeFailover(sb, res.Failover)
	p("\n")
	res.endPage(sb)
	return os.WriteFile(filepath.Join(out, "DURABLE.md"), []byte(sb.String()), 0o644)
}

// startBenchCluster starts 3 nodes under dir, with peer mutual TLS if
// peer is set (a CA and node certificates made in dir). stop stops them.
func startBenchCluster(dir, srddBin, python string, every int, peer bool) ([]*benchNode, []string, func(), error) {
	var nodes []*benchNode
	var cmds []string
	stop := func() {
		for _, n := range nodes {
			n.c.stop()
		}
	}
	var ca *peeridtest.CA
	if peer {
		ca = peeridtest.NewCA(benchTB{dir: dir}, "bench-peer-ca")
	}
	ckpt := filepath.Join(dir, "checkpoints")
	for i := 1; i <= 3; i++ {
		n := &benchNode{id: fmt.Sprintf("n%d", i), dir: filepath.Join(dir, fmt.Sprintf("n%d", i))}
		port, err := netutil.FreePort()
		if err != nil {
			return nodes, cmds, stop, err
		}
		rport, err := netutil.FreePort()
		if err != nil {
			return nodes, cmds, stop, err
		}
		n.http = fmt.Sprintf("127.0.0.1:%d", port)
		a := []string{"server", "--node-id", n.id, "--http-addr", n.http, "--raft-addr", fmt.Sprintf("127.0.0.1:%d", rport),
			"--data-dir", n.dir, "--python", python, "--log-level", "warn", "--spark-master", "local[2]",
			"--checkpoint-uri", ckpt, "--checkpoint-every", fmt.Sprint(every),
			"--file-root", filepath.Dir(dir)} // the benchmark's temp dir, where it writes the files it loads
		if ca != nil {
			f := ca.Node(benchTB{dir: dir}, n.id)
			a = append(a, "--peer-cert", f.Cert, "--peer-key", f.Key, "--peer-ca", ca.File)
		} else {
			a = append(a, "--insecure") // the plaintext baseline
		}
		if i == 1 {
			admit := make([]string, 0, 2)
			for j := 2; j <= 3; j++ {
				admit = append(admit, fmt.Sprintf("n%d", j))
			}
			a = append(a, "--bootstrap", "--admit", strings.Join(admit, ","))
		} else {
			a = append(a, "--join", nodes[0].http)
		}
		c, _, err := startChild(n.id, func(l string) bool { return strings.Contains(l, "serving on http://") }, 2*time.Minute, srddBin, a...)
		if err != nil {
			return nodes, cmds, stop, err
		}
		n.c = c
		cmds = append(cmds, srddBin+" "+strings.Join(a, " "))
		nodes = append(nodes, n)
	}
	return nodes, cmds, stop, nil
}

// benchTB lets peeridtest make certificates outside a test: files go
// under dir, and a failure panics (the benchmark stops).
type benchTB struct {
	testing.TB
	dir string
}

func (benchTB) Helper()           {}
func (benchTB) Fatal(args ...any) { panic(fmt.Sprint(args...)) }
func (b benchTB) TempDir() string {
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		panic(err)
	}
	d, err := os.MkdirTemp(b.dir, "pki-")
	if err != nil {
		panic(err)
	}
	return d
}

// latencyRuns measures durable sets at 1 and 64 clients (names get
// suffix).
func latencyRuns(ctx context.Context, cl *srddclient.Client, nodes []*benchNode, dur time.Duration, suffix string) ([]*loadgen.Result, error) {
	if _, err := cl.CreateRDDMode(ctx, "dur", "", "durable"); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(3 * time.Minute)
	var r srddclient.RDD
	var err error
	for {
		r, err = cl.DescribeRDD(ctx, "dur")
		if err == nil && r.State == "ready" {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("dur not ready within 3m (state %q, err %v)", r.State, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var owner, other *benchNode
	for _, n := range nodes {
		if n.id == r.Node {
			owner = n
		} else if other == nil {
			other = n
		}
	}
	if owner == nil {
		return nil, fmt.Errorf("rdd dur on unknown node %q", r.Node)
	}
	fmt.Printf("durable rdd on %s\n", owner.id)
	var out []*loadgen.Result
	for _, run := range []struct {
		name    string
		node    *benchNode
		clients int
	}{
		{"durable-set-c1-owner", owner, 1},
		{"durable-set-c1-via-other-node", other, 1},
		{"durable-set-c64-owner", owner, 64},
		{"durable-set-c64-spread", nil, 64},
	} {
		cfg := loadgen.Config{Keys: 100_000, ValueSize: 100, Concurrency: run.clients, ReadRatio: 0, Dist: "uniform",
			Duration: dur, Warmup: 2 * time.Second, Seed: 1}
		var t loadgen.Target
		if run.node != nil {
			t = loadgen.NewSRDD(run.node.http, "dur", run.clients)
		} else {
			t = newSpread(nodes, "dur", run.clients)
		}
		res, err := loadgen.Run(ctx, run.name+suffix, cfg, t)
		_ = t.Close()
		if err != nil {
			return out, err
		}
		printResult(res)
		out = append(out, &res)
	}
	return out, nil
}

// comparePeerTLS runs the latency runs on a cluster without peer TLS,
// then on one with it, and writes PEERTLS.md and results/peertls.json.
func comparePeerTLS(tmp, srddBin, python string, every int, dur time.Duration, out string) error {
	res := &durableResults{Generated: time.Now().UTC().Format("2006-01-02 15:04 UTC"), Machine: machineInfo()}
	ctx := context.Background()
	for _, peer := range []bool{false, true} {
		suffix, name := "-plain", "plain"
		if peer {
			suffix, name = "-peertls", "peertls"
		}
		nodes, cmds, stop, err := startBenchCluster(filepath.Join(tmp, name), srddBin, python, every, peer)
		res.Commands = append(res.Commands, cmds...)
		if err != nil {
			stop()
			return err
		}
		load := loadAvg()
		runs, err := latencyRuns(ctx, srddclient.New(nodes[0].http), nodes, dur, suffix)
		stop()
		if err != nil {
			return err
		}
		res.Runs = append(res.Runs, runs...)
		res.Notes = append(res.Notes, fmt.Sprintf("%s cluster: load average %s when its runs began, %s when they ended", name, load, loadAvg()))
	}
	sb, err := res.startPage(out, "peertls.json", "Peer mutual TLS: the cost on a durable write", "durable --peer-tls compare",
		"The same runs on two fresh 3-node clusters on loopback, one after the other: without peer TLS (`-plain`), then with `--peer-cert/--peer-key/--peer-ca` (`-peertls`). A durable set is a Raft write (replicated over the peer channel); through another node it is also forwarded over it.")
	if err != nil {
		return err
	}
	res.endPage(sb)
	return os.WriteFile(filepath.Join(out, "PEERTLS.md"), []byte(sb.String()), 0o644)
}

// loadAvg is the 1, 5 and 15 minute load averages, or "?".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
