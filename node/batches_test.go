package node

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/testutil"
)

// batchApp writes the Python applications the batch tests submit into
// dir: wait.py starts Spark, says so and waits to be killed; fail.py
// exits 3 before Spark starts.
func batchApps(t *testing.T, dir string) (wait, fail string) {
	t.Helper()
	wait, fail = filepath.Join(dir, "wait.py"), filepath.Join(dir, "fail.py")
	for path, code := range map[string]string{
		wait: "import time\nfrom pyspark.sql import SparkSession\n" +
			"spark = SparkSession.builder.getOrCreate()\n" +
			"print('batch-started', spark.sparkContext.applicationId, flush=True)\n" +
			"time.sleep(900)\n",
		fail: "import sys\nprint('batch-failing', flush=True)\nsys.exit(3)\n",
	} {
		if err := os.WriteFile(path, []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return wait, fail
}

type batchView struct {
	ID      int64    `json:"id"`
	State   string   `json:"state"`
	AppID   *string  `json:"appId"`
	Node    string   `json:"node"`
	Reason  string   `json:"reason"`
	Log     []string `json:"log"`
	AppInfo struct {
		DriverLogURL *string `json:"driverLogUrl"`
	} `json:"appInfo"`
}

func postBatch(t *testing.T, base, body string) batchView {
	t.Helper()
	var v batchView
	if err := json.Unmarshal(do(t, "POST", base+"/batches", body, 201), &v); err != nil {
		t.Fatal(err)
	}
	if v.State != "starting" {
		t.Fatalf("new batch is %q, want starting", v.State)
	}
	return v
}

// waitBatch waits until the batch's state, read through base, is want;
// a final state other than want fails the test.
func waitBatch(t *testing.T, base string, id int64, want string) {
	t.Helper()
	var last string
	err := testutil.WaitFor(5*time.Minute, func() (bool, error) {
		st, b := rawDo("GET", fmt.Sprintf("%s/batches/%d/state", base, id), "")
		if st != 200 {
			return false, nil // a node restarting, or an election
		}
		var s struct {
			ID    int64  `json:"id"`
			State string `json:"state"`
		}
		if err := json.Unmarshal(b, &s); err != nil || s.ID != id {
			return false, fmt.Errorf("state body %s", b)
		}
		last = s.State
		switch {
		case s.State == want:
			return true, nil
		case s.State == "success" || s.State == "dead" || s.State == "killed":
			return false, fmt.Errorf("batch %d ended %s", id, s.State)
		}
		return false, nil
	})
	if err != nil {
		_, logb := rawDo("GET", fmt.Sprintf("%s/batches/%d/log?size=40", base, id), "")
		t.Fatalf("batch %d never reached %s (last %s): %v\nlog: %s", id, want, last, err, logb)
	}
}

func getBatch(t *testing.T, base string, id int64) batchView {
	t.Helper()
	var v batchView
	if err := json.Unmarshal(do(t, "GET", fmt.Sprintf("%s/batches/%d", base, id), "", 200), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestBatchOnKilledNode runs a batch on a three-node cluster: placed on
// the least-loaded follower, visible through every node, its log
// forwarded from its node; the node is killed and the batch shows dead
// with the reason; the node comes back with the records, and ids go on.
func TestBatchOnKilledNode(t *testing.T) {
	spark(t)
	roots := t.TempDir() // every node takes files from here
	wait, fail := batchApps(t, roots)
	ms := make([]*member, 3)
	for i := range ms {
		ms[i] = &member{id: fmt.Sprintf("n%d", i+1), http: testutil.FreeAddr(t), raft: testutil.FreeAddr(t), dir: t.TempDir()}
	}
	start := func(m *member, join []string) {
		c := m.cfg(t, join)
		c.FileRoots = []string{roots}
		n, err := Start(c)
		if err != nil {
			t.Fatalf("start %s: %v", m.id, err)
		}
		m.n = n
	}
	start(ms[0], nil)
	start(ms[1], []string{ms[0].http})
	start(ms[2], []string{ms[0].http})
	t.Cleanup(func() {
		for _, m := range ms {
			if m.n != nil {
				m.n.Close()
			}
		}
	})
	waitMembers(t, ms, 3)

	// Bad input: a clear 4xx wherever placement would send it.
	do(t, "POST", ms[0].base()+"/batches", `{"file":"/etc/passwd"}`, 403)
	do(t, "POST", ms[0].base()+"/batches", `{"args":["x"]}`, 400)
	do(t, "POST", ms[0].base()+"/batches", fmt.Sprintf(`{"file":%q,"conf":{"spark.master":"yarn"}}`, wait), 400)
	do(t, "GET", ms[0].base()+"/batches/7", "", 404)

	v := postBatch(t, ms[2].base(), fmt.Sprintf(`{"file":%q,"name":"waiter"}`, wait))
	leader := leaderOf(ms)
	if v.Node == "" || (leader != nil && v.Node == leader.id) {
		t.Fatalf("batch placed on %q, want a follower (leader %v)", v.Node, leader.id)
	}
	owner, other := ownerAndOther(ms, v.Node)
	waitBatch(t, other.base(), v.ID, "running")
	// Through a node that does not run it: the view and log come from
	// the owner.
	err := testutil.WaitFor(2*time.Minute, func() (bool, error) {
		var l struct {
			Log   []string `json:"log"`
			Total int      `json:"total"`
		}
		_ = json.Unmarshal(do(t, "GET", fmt.Sprintf("%s/batches/%d/log?from=0&size=1000", other.base(), v.ID), "", 200), &l)
		return strings.Contains(strings.Join(l.Log, "\n"), "batch-started local-"), nil
	})
	if err != nil {
		t.Fatalf("the driver's output never reached the log: %v", err)
	}
	got := getBatch(t, other.base(), v.ID)
	if got.AppID == nil || !strings.HasPrefix(*got.AppID, "local-") || got.Node != owner.id ||
		got.AppInfo.DriverLogURL == nil || !strings.Contains(*got.AppInfo.DriverLogURL, owner.http) {
		t.Fatalf("batch through %s = %+v", other.id, got)
	}
	var list struct {
		From, Total int
		Sessions    []batchView `json:"sessions"`
	}
	_ = json.Unmarshal(do(t, "GET", other.base()+"/batches", "", 200), &list)
	if list.Total != 1 || len(list.Sessions) != 1 || list.Sessions[0].ID != v.ID {
		t.Fatalf("list = %+v", list)
	}

	// Kill the batch's node: the leader marks it down, and the batch dead.
	owner.n.Close()
	owner.n = nil
	waitBatch(t, other.base(), v.ID, "dead")
	got = getBatch(t, other.base(), v.ID)
	if !strings.Contains(got.Reason, owner.id) || !strings.Contains(got.Reason, "down") {
		t.Fatalf("dead batch's reason = %q", got.Reason)
	}
	b := do(t, "GET", fmt.Sprintf("%s/batches/%d/log", other.base(), v.ID), "", 200)
	if !strings.Contains(string(b), "not up") {
		t.Fatalf("log of a batch on a down node: %s", b)
	}

	// The node comes back: the record is still there, the same on every
	// node, and a new batch gets the next id, never a used one.
	start(owner, nil)
	waitMembers(t, ms, 3)
	waitSameState(t, ms)
	for _, m := range ms {
		if rec, ok := m.n.Registry.Batch(v.ID); !ok || rec.State != cluster.BatchDead || rec.Name != "waiter" {
			t.Fatalf("%s's record of batch %d after the restart = %+v, %v", m.id, v.ID, rec, ok)
		}
	}
	f := postBatch(t, owner.base(), fmt.Sprintf(`{"file":%q}`, fail))
	if f.ID != v.ID+1 {
		t.Fatalf("next batch id = %d, want %d", f.ID, v.ID+1)
	}
	waitBatch(t, owner.base(), f.ID, "dead")
}

// TestBatchRestartedNode stops a single node while its batch runs: the
// driver goes with it, and the node marks the batch dead when it starts
// again; the record and the id counter survive.
func TestBatchRestartedNode(t *testing.T) {
	spark(t)
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { n.Close() }()
	base := "http://" + n.HTTPAddr()
	wait, _ := batchApps(t, filepath.Join(dir, "files"))
	v := postBatch(t, base, fmt.Sprintf(`{"file":%q}`, wait))
	waitBatch(t, base, v.ID, "running")
	n.Close()
	// The driver's process group is gone with the node.
	if err := testutil.WaitFor(30*time.Second, func() (bool, error) {
		return !processRunning(wait), nil
	}); err != nil {
		t.Fatalf("the driver outlived its node: %v", err)
	}
	n, err = Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base = "http://" + n.HTTPAddr()
	got := getBatch(t, base, v.ID)
	if got.State != "dead" || !strings.Contains(got.Reason, "restarted") {
		t.Fatalf("batch after the restart = %+v", got)
	}
	if next := postBatch(t, base, `{"file":`+fmt.Sprintf("%q", filepath.Join(dir, "files", "fail.py"))+`}`); next.ID != v.ID+1 {
		t.Fatalf("id after a restart = %d, want %d", next.ID, v.ID+1)
	} else {
		waitBatch(t, base, next.ID, "dead")
	}
}

// processRunning reports whether any process has arg in its command line.
func processRunning(arg string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), arg) {
			return true
		}
	}
	return false
}

// TestBatchAuth: running a batch takes the code role; its principal and ACLs
// rule who may read or kill it, as for sessions.
func TestBatchAuth(t *testing.T) {
	spark(t)
	dir := t.TempDir()
	_, base, tokens := authNode(t, dir, map[string][]string{
		"root": {"admin"}, "ana": {"code"}, "vic": {"code"}, "sam": {"code"}, "reader": {"read:*"},
	}, nil)
	call := caller(t, base, tokens)
	_, fail := batchApps(t, filepath.Join(dir, "data", "files"))
	body := fmt.Sprintf(`{"file":%q,"viewUsers":["vic"]}`, fail)
	call("POST", "/batches", body, "reader", 403)
	call("POST", "/batches", body, "", 401)
	call("POST", "/batches", fmt.Sprintf(`{"file":%q,"proxyUser":"bob"}`, fail), "ana", 403)
	var v batchView
	_ = json.Unmarshal(call("POST", "/batches", body, "ana", 201), &v)
	p := fmt.Sprintf("/batches/%d", v.ID)
	for _, path := range []string{p, p + "/state", p + "/log"} {
		call("GET", path, "", "vic", 200)
		call("GET", path, "", "sam", 403)
	}
	call("GET", "/batches", "", "reader", 200)
	call("DELETE", p, "", "vic", 403)
	call("DELETE", p, "", "sam", 403)
	call("DELETE", p, "", "ana", 200)
	b := call("GET", p, "", "root", 200)
	if !strings.Contains(string(b), `"owner":"ana"`) {
		t.Fatalf("batch as root: %s", b)
	}
}

// TestBatchJar runs a jar batch: a Scala Spark application, compiled here
// with the Scala compiler among pyspark's jars (no JDK needed), submitted
// with className and args; it writes its result into the file root.
func TestBatchJar(t *testing.T) {
	spark(t)
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	_, base := startNode(t, cfg)
	files := filepath.Join(dir, "files")
	src, jar, out := filepath.Join(t.TempDir(), "App.scala"), filepath.Join(files, "app.jar"), filepath.Join(files, "total.txt")
	if err := os.WriteFile(src, []byte(`object SrddBatchApp {
  def main(args: Array[String]): Unit = {
    val spark = org.apache.spark.sql.SparkSession.builder().getOrCreate()
    val total = spark.sparkContext.parallelize(1 to args(0).toInt, 2).map(_.toLong).reduce(_ + _)
    java.nio.file.Files.write(java.nio.file.Paths.get(args(1)), total.toString.getBytes("UTF-8"))
    println(s"jar-batch-total $total")
    spark.stop()
  }
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	pyspark, err := exec.Command(cfg.Python, "-c", "import os, pyspark; print(os.path.dirname(pyspark.__file__))").Output()
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(strings.TrimSpace(string(pyspark)), "jars", "*")
	if b, err := exec.Command("java", "-cp", cp, "scala.tools.nsc.Main", "-usejavacp", "-d", jar, src).CombinedOutput(); err != nil {
		t.Fatalf("cannot compile the Scala app: %v\n%s", err, b)
	}
	v := postBatch(t, base, fmt.Sprintf(`{"file":%q,"className":"SrddBatchApp","args":["100",%q]}`, jar, out))
	waitBatch(t, base, v.ID, "success")
	if b, err := os.ReadFile(out); err != nil || string(b) != "5050" {
		t.Fatalf("the jar wrote %q, %v", b, err)
	}
	got := getBatch(t, base, v.ID)
	if got.AppID == nil || !strings.HasPrefix(*got.AppID, "local-") {
		t.Fatalf("jar batch = %+v", got)
	}
	b := do(t, "GET", fmt.Sprintf("%s/batches/%d/log?from=0&size=10000", base, v.ID), "", 200)
	if !strings.Contains(string(b), "jar-batch-total 5050") {
		t.Fatalf("log lacks the app's output: %.2000s", b)
	}
}
