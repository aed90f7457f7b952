package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/srdd/srdd/benchmarks/loadgen"
	"github.com/srdd/srdd/benchmarks/report"
	srddclient "github.com/srdd/srdd/client/go"
	"github.com/srdd/srdd/internal/netutil"
	"github.com/srdd/srdd/internal/peerid/peeridtest"
)

// failoverResults is what the failover step of `bench durable` measured
// (issue 24): copies on a 3-node cluster with node-local checkpoints.
type failoverResults struct {
	Keys     int     `json:"keys"`
	LoadSecs float64 `json:"load_seconds"`
	// CopyReadySecs: from the end of the load to the copy serving a
	// loaded key (it rebuilds from the owner's checkpoint, streamed over
	// the peer channel).
	CopyReadySecs float64               `json:"copy_ready_seconds"`
	Memory        []report.Memory       `json:"memory"`
	Throughput    []*loadgen.Result     `json:"throughput"`
	Kills         []failoverKill        `json:"kills"`
	Commands      []string              `json:"commands"`
	Summary       map[string][3]float64 `json:"summary_min_median_max_seconds"`
}

// failoverKill is one kill -9 of the owner's machine, times from the kill.
type failoverKill struct {
	Victim            string  `json:"victim"`
	DownSecs          float64 `json:"down_mark_seconds"`
	ReadSecs          float64 `json:"first_read_seconds"`
	WriteSecs         float64 `json:"first_write_seconds"`
	CopiesSecs        float64 `json:"copies_back_to_2_seconds"`
	KeysAfter         int64   `json:"keys_after"`
	ReadAfterDownSecs float64 `json:"first_read_after_down_mark_seconds"`
}

// failNode is one node of the failover cluster; it can be killed and
// started again with an empty data directory.
type failNode struct {
	benchNode
	args []string
}

// measureFailover starts a 3-node cluster with peer TLS and the default,
// node-local checkpoint directory of each node; compares write
// throughput at 64 clients with 1 and 2 copies; loads keys into an RDD
// with 2 copies and reports the memory of each copy; then kills -9 the
// owner's machine (the node and its interpreters) and deletes its data
// directory, kills times, measuring from each kill the down mark, the
// first read and write through a survivor, and the return to 2 copies;
// the killed node rejoins empty before the next kill.
func measureFailover(tmp, srddBin, python string, keys, kills int, dur time.Duration) (*failoverResults, error) {
	res := &failoverResults{Keys: keys, Summary: map[string][3]float64{}}
	dir := filepath.Join(tmp, "failover")
	ca := peeridtest.NewCA(benchTB{dir: dir}, "failover-ca")
	var nodes []*failNode
	defer func() {
		for _, n := range nodes {
			killTree(n)
		}
	}()
	for i := 1; i <= 3; i++ {
		n := &failNode{benchNode: benchNode{id: fmt.Sprintf("n%d", i), dir: filepath.Join(dir, fmt.Sprintf("n%d", i))}}
		hp, err := netutil.FreePort()
		if err != nil {
			return res, err
		}
		rp, err := netutil.FreePort()
		if err != nil {
			return res, err
		}
		n.http = fmt.Sprintf("127.0.0.1:%d", hp)
		f := ca.Node(benchTB{dir: dir}, n.id)
		n.args = []string{"server", "--node-id", n.id, "--http-addr", n.http, "--raft-addr", fmt.Sprintf("127.0.0.1:%d", rp),
			"--data-dir", n.dir, "--python", python, "--log-level", "warn", "--spark-master", "local[2]",
			"--peer-cert", f.Cert, "--peer-key", f.Key, "--peer-ca", ca.File,
			"--file-root", tmp} // where the benchmark writes the file it loads
		a := append([]string(nil), n.args...)
		if i == 1 {
			a = append(a, "--bootstrap", "--admit", "n2,n3")
		} else {
			a = append(a, "--join", nodes[0].http)
		}
		c, _, err := startChild(n.id, func(l string) bool { return strings.Contains(l, "serving on http://") }, 2*time.Minute, srddBin, a...)
		if err != nil {
			return res, err
		}
		n.c = c
		res.Commands = append(res.Commands, srddBin+" "+strings.Join(a, " "))
		nodes = append(nodes, n)
	}
	ctx := context.Background()
	byID := func(id string) *failNode {
		for _, n := range nodes {
			if n.id == id {
				return n
			}
		}
		return nil
	}
	client := func(n *failNode) *srddclient.Client { return srddclient.New(n.http) }
	hc := &http.Client{Timeout: 5 * time.Second}
	probeKey := loadgen.KeyName("", keys-1)
	// waitCopies waits until name has 2 copies, each serving (a stale read
	// of probe through each copy's node is served by it: the copy is
	// built, not just recorded).
	waitCopies := func(via *failNode, name string, limit time.Duration) (srddclient.RDD, error) {
		deadline := time.Now().Add(limit)
		for {
			r, err := client(via).DescribeRDD(ctx, name)
			serving := err == nil && r.State == "ready" && len(r.Copies) == 2 && !r.UnderReplicated
			for _, c := range r.Copies {
				if n := byID(c.Node); serving && n != nil {
					st, by := getVia(hc, n.http, name, probeKey, "stale")
					serving = (st == 200 && by == c.Node) || (st == 404 && by == "") // before the load, the key is absent
				}
			}
			if serving {
				return r, nil
			}
			if time.Now().After(deadline) {
				return r, fmt.Errorf("%s without 2 ready copies after %s (%+v, %v)", name, limit, r, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// 1. The cost of a copy: durable sets at 64 clients, 1 copy and 2.
	for _, n := range []int{1, 2} {
		name := fmt.Sprintf("tp%d", n)
		if _, err := client(nodes[0]).CreateRDDWith(ctx, name, srddclient.CreateRDDOptions{Mode: "durable", Replicas: n}); err != nil {
			return res, err
		}
		deadline := time.Now().Add(5 * time.Minute)
		var r srddclient.RDD
		for {
			var err error
			r, err = client(nodes[0]).DescribeRDD(ctx, name)
			if err == nil && r.State == "ready" && len(r.Copies) == n {
				break
			}
			if time.Now().After(deadline) {
				return res, fmt.Errorf("%s not ready with %d copies: %+v %v", name, n, r, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		cfg := loadgen.Config{Keys: 100_000, ValueSize: 100, Concurrency: 64, ReadRatio: 0, Dist: "uniform",
			Duration: dur, Warmup: 2 * time.Second, Seed: 1}
		t := loadgen.NewSRDD(byID(r.Node).http, name, 64)
		out, err := loadgen.Run(ctx, fmt.Sprintf("durable-set-c64-replicas%d", n), cfg, t)
		_ = t.Close()
		if err != nil {
			return res, err
		}
		printResult(out)
		res.Throughput = append(res.Throughput, &out)
		if err := client(nodes[0]).DropRDD(ctx, name); err != nil {
			return res, err
		}
	}

	// 2. keys loaded into an RDD with 2 copies.
	path := filepath.Join(tmp, "failover.jsonl")
	f, err := os.Create(path)
	if err != nil {
		return res, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := 0; i < keys; i++ {
		fmt.Fprintf(w, "{\"key\":\"%s\",\"value\":%s}\n", loadgen.KeyName("", i), loadgen.Value(100, i%256))
	}
	if err := w.Flush(); err != nil {
		return res, err
	}
	f.Close()
	if _, err := client(nodes[0]).CreateRDDWith(ctx, "fo", srddclient.CreateRDDOptions{Mode: "durable", Replicas: 2}); err != nil {
		return res, err
	}
	r, err := waitCopies(nodes[0], "fo", 5*time.Minute)
	if err != nil {
		return res, err
	}
	owner := byID(r.Node)
	began := time.Now()
	if _, err := client(owner).Load(ctx, "fo", path, srddclient.LoadOptions{}); err != nil {
		return res, err
	}
	if _, err := client(owner).WaitLoad(ctx, "fo", 500*time.Millisecond, nil); err != nil {
		return res, err
	}
	res.LoadSecs = time.Since(began).Seconds()
	loaded := time.Now()
	var copyNode *failNode
	for _, c := range r.Copies {
		if c.Node != owner.id {
			copyNode = byID(c.Node)
		}
	}
	for {
		st, by := getVia(hc, copyNode.http, "fo", probeKey, "stale")
		if st == 200 && by == copyNode.id {
			break
		}
		if time.Since(loaded) > 15*time.Minute {
			return res, fmt.Errorf("the copy on %s never served a loaded key", copyNode.id)
		}
		time.Sleep(200 * time.Millisecond)
	}
	res.CopyReadySecs = time.Since(loaded).Seconds()
	fmt.Printf("failover: %d keys loaded in %.1f s; the copy on %s served them %.1f s after the load\n", keys, res.LoadSecs, copyNode.id, res.CopyReadySecs)
	r, _ = client(owner).DescribeRDD(ctx, "fo")
	for _, c := range r.Copies {
		n := byID(c.Node)
		m, err := interpreterMemory(n.c.cmd.Process.Pid, c.Session)
		if err != nil {
			return res, err
		}
		m.Label, m.Keys = fmt.Sprintf("%s on %s (%s)", "fo", c.Node, c.Role), int64(keys)
		res.Memory = append(res.Memory, m)
	}

	// 3. Kills of the owner's machine.
	for k := 0; k < kills; k++ {
		r, err := waitCopies(nodes[0], "fo", 15*time.Minute)
		if err != nil {
			// nodes[0] may be the one that was killed last and is back:
			// any node answers.
			return res, err
		}
		victim := byID(r.Node)
		var survivors []*failNode
		for _, n := range nodes {
			if n != victim {
				survivors = append(survivors, n)
			}
		}
		killTree(victim)
		killed := time.Now()
		if err := os.RemoveAll(victim.dir); err != nil {
			return res, err
		}
		kr := failoverKill{Victim: victim.id}
		since := func() float64 { return time.Since(killed).Seconds() }
		for kr.DownSecs == 0 || kr.ReadSecs == 0 || kr.WriteSecs == 0 {
			if time.Since(killed) > 10*time.Minute {
				return res, fmt.Errorf("kill %d: no failover within 10 min: %+v", k, kr)
			}
			if kr.DownSecs == 0 && memberDown(hc, survivors[0].http, victim.id) {
				kr.DownSecs = since()
			}
			if kr.ReadSecs == 0 {
				if st, _ := getVia(hc, survivors[0].http, "fo", probeKey, "default"); st == 200 {
					kr.ReadSecs = since()
				}
			}
			if kr.WriteSecs == 0 {
				req, _ := http.NewRequest("PUT", "http://"+survivors[1].http+"/v1/rdds/fo/keys/failover-probe", strings.NewReader(fmt.Sprint(k)))
				req.Header.Set("Content-Type", "application/json")
				if resp, err := hc.Do(req); err == nil {
					resp.Body.Close()
					if resp.StatusCode == 204 {
						kr.WriteSecs = since()
					}
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		kr.ReadAfterDownSecs = kr.ReadSecs - kr.DownSecs
		if _, err := waitCopies(survivors[0], "fo", 15*time.Minute); err != nil {
			return res, err
		}
		kr.CopiesSecs = since()
		if d, err := client(survivors[0]).DescribeRDD(ctx, "fo"); err == nil && d.Keys != nil {
			kr.KeysAfter = *d.Keys
		}
		fmt.Printf("failover kill %d of %s: down %.2f s, first read %.2f s (%.2f s after the down mark), first write %.2f s, 2 copies %.1f s, keys %d\n",
			k+1, victim.id, kr.DownSecs, kr.ReadSecs, kr.ReadAfterDownSecs, kr.WriteSecs, kr.CopiesSecs, kr.KeysAfter)
		res.Kills = append(res.Kills, kr)
		// The machine comes back with an empty disk.
		a := append(append([]string(nil), victim.args...), "--join", survivors[0].http)
		c, _, err := startChild(victim.id, func(l string) bool { return strings.Contains(l, "serving on http://") }, 2*time.Minute, srddBin, a...)
		if err != nil {
			return res, err
		}
		victim.c = c
	}
	col := func(get func(failoverKill) float64) [3]float64 {
		var v []float64
		for _, k := range res.Kills {
			v = append(v, get(k))
		}
		if len(v) == 0 {
			return [3]float64{}
		}
		sort.Float64s(v)
		return [3]float64{v[0], v[len(v)/2], v[len(v)-1]}
	}
	res.Summary["down_mark"] = col(func(k failoverKill) float64 { return k.DownSecs })
	res.Summary["first_read"] = col(func(k failoverKill) float64 { return k.ReadSecs })
	res.Summary["first_read_after_down_mark"] = col(func(k failoverKill) float64 { return k.ReadAfterDownSecs })
	res.Summary["first_write"] = col(func(k failoverKill) float64 { return k.WriteSecs })
	res.Summary["copies_back_to_2"] = col(func(k failoverKill) float64 { return k.CopiesSecs })
	return res, nil
}

// getVia reads key of rdd through addr at a consistency level: the
// status and the node whose copy served it.
func getVia(hc *http.Client, addr, rdd, key, consistency string) (int, string) {
	resp, err := hc.Get("http://" + addr + "/v1/rdds/" + rdd + "/keys/" + key + "?consistency=" + consistency)
	if err != nil {
		return 0, ""
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Srdd-Served-By")
}

// memberDown reports whether addr's registry has node id down.
func memberDown(hc *http.Client, addr, id string) bool {
	var v struct {
		Members []struct{ ID, Status string }
	}
	resp, err := hc.Get("http://" + addr + "/v1/cluster")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if json.NewDecoder(resp.Body).Decode(&v) != nil {
		return false
	}
	for _, m := range v.Members {
		if m.ID == id {
			return m.Status == "down"
		}
	}
	return false
}

// killTree kills, with SIGKILL, a node and every process under it (its
// interpreters and their JVMs), as if its machine were lost.
func killTree(n *failNode) {
	if n.c == nil {
		return
	}
	root := n.c.cmd.Process.Pid
	procs := readProcs()
	children := map[int][]int{}
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	var all []int
	var walk func(int)
	walk = func(pid int) {
		all = append(all, pid)
		for _, c := range children[pid] {
			walk(c)
		}
	}
	walk(root)
	_ = syscall.Kill(-root, syscall.SIGKILL)
	for _, pid := range all {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	<-n.c.done
	n.c = nil
}

// writeFailover renders res as a section of DURABLE.md.
func writeFailover(sb *strings.Builder, res *failoverResults) {
	if res == nil || len(res.Kills) == 0 {
		return
	}
	p := func(format string, a ...any) { fmt.Fprintf(sb, format, a...) }
	p("\n## Failover: kill -9 of the owner's machine, its data directory deleted\n\n")
	p("3 nodes with peer TLS and node-local checkpoints (each node's own `DATA-DIR/checkpoints`, no shared storage). An RDD with 2 copies, %d keys loaded in %.1f s; the copy served them %.1f s after the load (it rebuilt from the owner's checkpoint, streamed over the peer channel). Then %d times: kill -9 of the owner node and its interpreters, its data directory deleted; times from the kill, through the survivors. The killed node rejoins empty before the next kill.\n\n",
		res.Keys, res.LoadSecs, res.CopyReadySecs, len(res.Kills))
	p("| kill | victim | down mark s | first read s | read after down mark s | first write s | 2 copies again s | keys after |\n|---|---|---|---|---|---|---|---|\n")
	for i, k := range res.Kills {
		p("| %d | %s | %.2f | %.2f | %.2f | %.2f | %.1f | %d |\n", i+1, k.Victim, k.DownSecs, k.ReadSecs, k.ReadAfterDownSecs, k.WriteSecs, k.CopiesSecs, k.KeysAfter)
	}
	p("\nReads are `default` reads through a survivor, which the owner serves: they answer again once a copy is promoted, after the down mark. *2 copies again*: until a new copy, on the third node, is built from the new owner's checkpoint streamed over the peer channel and serves reads itself.\n")
	p("\n| from the kill (s) | min | median | max |\n|---|---|---|---|\n")
	for _, name := range []string{"down_mark", "first_read", "first_read_after_down_mark", "first_write", "copies_back_to_2"} {
		v := res.Summary[name]
		p("| %s | %.2f | %.2f | %.2f |\n", strings.ReplaceAll(name, "_", " "), v[0], v[1], v[2])
	}
	if len(res.Throughput) == 2 {
		a, b := res.Throughput[0], res.Throughput[1]
		p("\n**Cost of a copy.** Durable sets at 64 clients to the owner: %.0f writes/s with 1 copy, %.0f with 2 (%.0f%%); p50 %.1f ms and %.1f ms.\n",
			a.OpsPerSec, b.OpsPerSec, 100*b.OpsPerSec/a.OpsPerSec, a.Latency.P50, b.Latency.P50)
	}
	if len(res.Memory) > 0 {
		p("\n**Memory per copy** (resident, the session holding it: Python driver + JVM + Python workers):")
		for _, m := range res.Memory {
			p(" %s: %.0f MiB (driver %.0f, JVM %.0f, workers %.0f);", m.Label, m.DriverMB+m.JVMMB+m.WorkersMB, m.DriverMB, m.JVMMB, m.WorkersMB)
		}
		p("\n")
	}
	p("\nFailover commands:\n\n```\n%s\n```\n", strings.Join(res.Commands, "\n"))
}
