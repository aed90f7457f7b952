package batches

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/fileroot"
	"github.com/srdd/srdd/internal/testutil"
	"github.com/srdd/srdd/sessions"
)

// fakeSubmit stands in for spark-submit in these unit tests of the
// manager (the real one runs in node/ and client/livy/): it prints what a
// driver on a standalone master prints, then does what the application
// file says.
const fakeSubmit = `#!/bin/bash
for a; do last=$a; done
echo "INFO StandaloneSchedulerBackend: Connected to Spark cluster with app ID app-20261201120000-0007"
case "$(cat "$last")" in
  ok) echo "job-done"; exit 0 ;;
  fail) echo "boom" >&2; exit 3 ;;
  spam) for i in $(seq 1 50); do echo "line $i"; done; exit 0 ;;
  wait) sleep 600 & echo $! > "$last.child"; echo "waiting"; wait ;;
esac
`

type fixture struct {
	m     *Manager
	reg   *cluster.Node
	roots string
}

func newFixture(t *testing.T, tweak func(*Config)) *fixture {
	t.Helper()
	dir := t.TempDir()
	reg, err := cluster.Open(cluster.Config{NodeID: "n1", RaftAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, "data"), Bootstrap: true,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, Logger: testutil.Logger(t, hclog.Warn)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	if err := reg.WaitForLeader(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Apply(cluster.Command{Type: cluster.CmdRegisterNode, Body: &cluster.RegisterNode{ID: "n1", HTTPAddr: "127.0.0.1:8998"}}); err != nil {
		t.Fatal(err)
	}
	roots := filepath.Join(dir, "files")
	if err := os.MkdirAll(roots, 0o700); err != nil {
		t.Fatal(err)
	}
	files, err := fileroot.New([]string{roots}, false, filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	sm := sessions.NewManager(sessions.Config{}, reg)
	sm.SetFileRoots(files)
	t.Cleanup(sm.Close)
	submit := filepath.Join(dir, "spark-submit")
	if err := os.WriteFile(submit, []byte(fakeSubmit), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := Config{SparkSubmit: submit, DataDir: filepath.Join(dir, "data"), KillGrace: time.Second, Logger: testutil.Logger(t, hclog.Warn)}
	if tweak != nil {
		tweak(&cfg)
	}
	m, err := New(cfg, reg, sm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return &fixture{m: m, reg: reg, roots: roots}
}

// app writes an application file whose content tells fakeSubmit what to do.
func (f *fixture) app(t *testing.T, name, what string) string {
	t.Helper()
	p := filepath.Join(f.roots, name)
	if err := os.WriteFile(p, []byte(what), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fixture) wait(t *testing.T, id int64, state string) cluster.Batch {
	t.Helper()
	var b cluster.Batch
	err := testutil.WaitFor(time.Minute, func() (bool, error) {
		b, _ = f.reg.Batch(id)
		if b.Final() && b.State != state {
			return false, errors.New("ended " + b.State + ": " + b.Reason)
		}
		return b.State == state, nil
	})
	if err != nil {
		t.Fatalf("batch %d never %s: %v", id, state, err)
	}
	return b
}

func TestBatchRunsToSuccessWithItsLog(t *testing.T) {
	f := newFixture(t, nil)
	v, err := f.m.Create(Request{File: f.app(t, "ok.py", "ok"), Name: "etl", Principal: "ana", Conf: map[string]string{"spark.sql.shuffle.partitions": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	if v.State != cluster.BatchStarting || v.Name == nil || *v.Name != "etl" || *v.Principal != "ana" ||
		v.AppInfo.DriverLogURL == nil || *v.AppInfo.DriverLogURL != "http://127.0.0.1:8998/batches/0/log" {
		t.Fatalf("new batch = %+v", v)
	}
	b := f.wait(t, v.ID, cluster.BatchSuccess)
	if b.AppID != "app-20261201120000-0007" {
		t.Fatalf("app id = %q", b.AppID)
	}
	lines, from, total, err := f.m.Log(v.ID, nil, 100)
	if err != nil || from != 0 || total != len(lines) || !strings.Contains(strings.Join(lines, "\n"), "job-done") {
		t.Fatalf("log = %q from %d total %d, %v", lines, from, total, err)
	}
	// Finished: the log is read back from disk, the same.
	if _, err := os.Stat(filepath.Join(f.m.dir, "0.log.json")); err != nil {
		t.Fatalf("no log on disk: %v", err)
	}
	if _, err := os.Stat(f.m.eventDir(0)); !os.IsNotExist(err) {
		t.Fatalf("event dir left behind: %v", err)
	}
	// Kill after the end changes nothing.
	if err := f.m.Kill(v.ID); err != nil {
		t.Fatal(err)
	}
	if b, _ := f.reg.Batch(v.ID); b.State != cluster.BatchSuccess {
		t.Fatalf("kill of a finished batch made it %s", b.State)
	}
	if _, err := f.m.Create(Request{File: f.app(t, "ok2.py", "ok"), Name: "etl"}); !errors.Is(err, cluster.ErrBatchExists) {
		t.Fatalf("second batch named etl: %v", err)
	}
}

func TestBatchLogIsBoundedAndPaged(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.LogLines = 20 })
	v, err := f.m.Create(Request{File: f.app(t, "spam.py", "spam")})
	if err != nil {
		t.Fatal(err)
	}
	f.wait(t, v.ID, cluster.BatchSuccess)
	// 51 lines printed, the last 20 kept; offsets count every line.
	lines, from, total, err := f.m.Log(v.ID, nil, 5)
	if err != nil || total != 51 || from != 46 || len(lines) != 5 || lines[4] != "line 50" {
		t.Fatalf("tail = %q from %d total %d, %v", lines, from, total, err)
	}
	zero := 0
	lines, from, _, _ = f.m.Log(v.ID, &zero, 3)
	if from != 31 || len(lines) != 3 || lines[0] != "line 31" {
		t.Fatalf("from 0 = %q from %d, want the first kept line (31)", lines, from)
	}
	past := 1000
	if lines, from, _, _ = f.m.Log(v.ID, &past, 3); len(lines) != 0 || from != 51 {
		t.Fatalf("past the end = %q from %d", lines, from)
	}
}

func TestFailingBatchIsDead(t *testing.T) {
	f := newFixture(t, nil)
	v, err := f.m.Create(Request{File: f.app(t, "fail.py", "fail")})
	if err != nil {
		t.Fatal(err)
	}
	b := f.wait(t, v.ID, cluster.BatchDead)
	if !strings.Contains(b.Reason, "exit status 3") {
		t.Fatalf("reason = %q", b.Reason)
	}
	lines, _, _, _ := f.m.Log(v.ID, nil, 100)
	if !strings.Contains(strings.Join(lines, "\n"), "boom") {
		t.Fatalf("stderr missing from the log: %q", lines)
	}
}

func TestKillTakesTheProcessGroup(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxBatches = 1 })
	app := f.app(t, "wait.py", "wait")
	v, err := f.m.Create(Request{File: app})
	if err != nil {
		t.Fatal(err)
	}
	f.wait(t, v.ID, cluster.BatchRunning)
	var child int
	if err := testutil.WaitFor(30*time.Second, func() (bool, error) {
		b, err := os.ReadFile(app + ".child")
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && child > 0, nil
	}); err != nil {
		t.Fatal(err)
	}
	// The node's limit: one live batch.
	if _, err := f.m.Create(Request{File: app}); !errors.Is(err, ErrLimit) {
		t.Fatalf("second batch over --max-batches 1: %v", err)
	}
	if err := f.m.Kill(v.ID); err != nil {
		t.Fatal(err)
	}
	if b, _ := f.reg.Batch(v.ID); b.State != cluster.BatchKilled {
		t.Fatalf("after Kill the batch is %s", b.State)
	}
	if err := testutil.WaitFor(30*time.Second, func() (bool, error) { return !alive(child), nil }); err != nil {
		t.Fatalf("the driver's child %d outlived the kill", child)
	}
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

func TestBadRequestsChangeNothing(t *testing.T) {
	f := newFixture(t, nil)
	ok := f.app(t, "ok.py", "ok")
	cases := map[string]Request{
		"no file":         {},
		"outside roots":   {File: "/etc/passwd"},
		"remote":          {File: "hdfs://nn/x.py"},
		"bad class":       {File: ok, ClassName: "a b"},
		"denied conf":     {File: ok, Conf: map[string]string{"spark.master": "yarn"}},
		"over cap":        {File: ok, DriverMemory: "900g"},
		"jar outside":     {File: ok, Jars: []string{"/etc/x.jar"}},
		"bad name":        {File: ok, Name: "../x"},
		"negative cores":  {File: ok, DriverCores: -1},
		"arg with a NUL":  {File: ok, Args: []string{"a\x00b"}},
		"not spark. conf": {File: ok, Conf: map[string]string{"x": "y"}},
	}
	for what, req := range cases {
		if _, err := f.m.Create(req); err == nil {
			t.Errorf("%s: created", what)
		}
	}
	if n := len(f.reg.Batches()); n != 0 {
		t.Fatalf("refused requests left %d records", n)
	}
}

func TestReconcileMarksLeftoversDead(t *testing.T) {
	f := newFixture(t, nil)
	old := time.Now().Add(-time.Hour).UnixMilli()
	for _, node := range []string{"n1", "n1"} {
		if _, err := f.reg.Apply(cluster.Command{Type: cluster.CmdCreateBatch, Body: &cluster.CreateBatch{Node: node, CreatedAt: old}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.reg.Apply(cluster.Command{Type: cluster.CmdSetBatchState, Body: &cluster.SetBatchState{ID: 1, State: cluster.BatchSuccess}}); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if b, _ := f.reg.Batch(0); b.State != cluster.BatchDead || !strings.Contains(b.Reason, "restarted") {
		t.Fatalf("leftover batch = %+v", b)
	}
	if b, _ := f.reg.Batch(1); b.State != cluster.BatchSuccess {
		t.Fatalf("finished batch changed: %+v", b)
	}
	// Livy's paging of GET /batches.
	if views, total := f.m.List(1, 5); total != 2 || len(views) != 1 || views[0].ID != 1 || views[0].State != "success" {
		t.Fatalf("List(1, 5) = %+v, %d", views, total)
	}
	if views, total := f.m.List(7, 5); total != 2 || len(views) != 0 {
		t.Fatalf("List past the end = %+v, %d", views, total)
	}
}

func TestPruneEventsKeepsTheNewestFile(t *testing.T) {
	f := newFixture(t, nil)
	app := filepath.Join(f.m.eventDir(4), "eventlog_v2_local-1")
	if err := os.MkdirAll(app, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"events_1_local-1", "events_2_local-1", "events_10_local-1", "appstatus_local-1.inprogress"} {
		if err := os.WriteFile(filepath.Join(app, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f.m.pruneEvents(4)
	left, _ := filepath.Glob(filepath.Join(app, "*"))
	for i := range left {
		left[i] = filepath.Base(left[i])
	}
	if strings.Join(left, ",") != "appstatus_local-1.inprogress,events_10_local-1" {
		t.Fatalf("left after pruning: %v", left)
	}
	if got := f.m.eventAppID(4); got != "local-1" {
		t.Fatalf("app id from the event dir = %q", got)
	}
}

// TestForgottenLogsAreRemoved: the logs of batches the registry no longer
// holds go, so the disk keeps at most MaxBatchRecords of them.
func TestForgottenLogsAreRemoved(t *testing.T) {
	f := newFixture(t, nil)
	if _, err := f.reg.Apply(cluster.Command{Type: cluster.CmdCreateBatch, Body: &cluster.CreateBatch{Node: "n1"}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"0.log.json", "5.log.json", "5.events", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(f.m.dir, name), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f.m.removeForgotten()
	entries, _ := os.ReadDir(f.m.dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if strings.Join(left, ",") != "0.log.json,notes.txt" {
		t.Fatalf("left: %v", left)
	}
}
