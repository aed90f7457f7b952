package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/srdd/srdd/internal/testutil"
)

func TestLivyVersionAndCreateValidation(t *testing.T) {
	_, base := sharedNode(t)
	var v struct{ Version, Srdd string }
	_ = json.Unmarshal(do(t, "GET", base+"/version", "", 200), &v)
	if v.Version != "0.8.0" {
		t.Fatalf("GET /version = %+v", v)
	}
	before := len(sessionIDs(t, base))
	f := func(body string, status int, code string) {
		t.Helper()
		st, b := rawDo("POST", base+"/sessions", body)
		if st != status || errorCode(t, b) != code {
			t.Fatalf("POST /sessions %s: %d %s; want %d %s", body, st, b, status, code)
		}
	}
	for _, body := range []string{
		`{"kind":"sparkr"}`, `{"kind":"ruby"}`, `{"driverMemory":"lots"}`, `{"ttl":"soon"}`,
		`{"numExecutors":-2}`, `{"driverCores":"two"}`, `{"name":"7"}`, `{"conf":{"hadoop.x":"1"}}`,
	} {
		f(body, 400, "invalid")
	}
	// one policy for conf and named fields (issue 13)
	for _, body := range []string{
		`{"conf":{"spark.master":"spark://evil:7077"}}`, `{"conf":{"spark.submit.deployMode":"cluster"}}`,
		`{"conf":{"spark.driver.bindAddress":"0.0.0.0"}}`, `{"conf":{"spark.pyspark.python":"/tmp/x"}}`,
		`{"conf":{"spark.jars.packages":"evil:evil:1.0"}}`, `{"conf":{"spark.jars.repositories":"http://evil"}}`,
		`{"conf":{"spark.driver.extraJavaOptions":"-javaagent:/tmp/a.jar"}}`, `{"conf":{"spark.executorEnv.LD_PRELOAD":"/tmp/x.so"}}`,
		`{"conf":{"spark.srdd.kv.cacheMiB":"100000"}}`,
	} {
		f(body, 400, "conf_not_allowed")
	}
	for _, body := range []string{
		`{"conf":{"spark.jars":"http://127.0.0.1:1/evil.jar"}}`, `{"jars":["http://example.com/evil.jar"]}`,
		`{"conf":{"spark.submit.pyFiles":"hdfs:///x.py"}}`, `{"archives":["s3a://b/env.zip"]}`,
	} {
		f(body, 400, "remote_uri_not_allowed")
	}
	f(`{"conf":{"spark.files":"/etc/passwd"}}`, 403, "forbidden_path")
	f(`{"pyFiles":["/etc/passwd"]}`, 403, "forbidden_path")
	for _, body := range []string{
		`{"driverMemory":"64g"}`, `{"conf":{"spark.executor.memory":"1t"}}`, `{"driverCores":64}`,
		`{"numExecutors":1000}`, `{"conf":{"spark.executor.instances":"17"}}`,
	} {
		f(body, 400, "conf_too_large")
	}
	if after := len(sessionIDs(t, base)); after != before {
		t.Fatalf("rejected creates changed the session list: %d -> %d", before, after)
	}
}

func sessionIDs(t *testing.T, base string) []int64 {
	var l struct {
		Sessions []struct{ ID int64 } `json:"sessions"`
	}
	_ = json.Unmarshal(do(t, "GET", base+"/sessions?size=1000", "", 200), &l)
	out := make([]int64, len(l.Sessions))
	for i, s := range l.Sessions {
		out[i] = s.ID
	}
	return out
}

func TestLivyStatementFeatures(t *testing.T) {
	spark(t)
	_, base := sharedNode(t)

	// %table, Livy's table MIME type.
	st := run(t, base, 0, "rows = [{'code': 'ak', 'pop': 733391}, {'code': 'hi', 'pop': 1455271}]\n%table rows")
	var tbl struct {
		Status string `json:"status"`
		Data   map[string]struct {
			Headers []struct{ Name, Type string } `json:"headers"`
			Data    [][]any                       `json:"data"`
		} `json:"data"`
	}
	if err := json.Unmarshal(st.Output, &tbl); err != nil || tbl.Status != "ok" {
		t.Fatalf("%%table output %s", st.Output)
	}
	tv, ok := tbl.Data["application/vnd.livy.table.v1+json"]
	if !ok || len(tv.Headers) != 2 || len(tv.Data) != 2 || tv.Headers[0].Name != "code" {
		t.Fatalf("%%table output %s", st.Output)
	}

	// sql statements in a pyspark session.
	run(t, base, 0, "spark.range(3).createOrReplaceTempView('three')")
	var sqlOut statement
	_ = json.Unmarshal(do(t, "POST", base+"/sessions/0/statements", `{"code":"SELECT id * 2 AS twice FROM three ORDER BY id","kind":"sql"}`, 201), &sqlOut)
	_ = json.Unmarshal(do(t, "GET", fmt.Sprintf("%s/sessions/0/statements/%d?wait=60", base, sqlOut.ID), "", 200), &sqlOut)
	var sq struct {
		Data map[string]struct {
			Schema struct{ Fields []struct{ Name string } } `json:"schema"`
			Data   [][]int                                  `json:"data"`
		} `json:"data"`
	}
	_ = json.Unmarshal(sqlOut.Output, &sq)
	js := sq.Data["application/json"]
	if sqlOut.State != "available" || len(js.Schema.Fields) != 1 || js.Schema.Fields[0].Name != "twice" ||
		fmt.Sprint(js.Data) != "[[0] [2] [4]]" {
		t.Fatalf("sql statement = %s %s", sqlOut.State, sqlOut.Output)
	}

	// ?wait= returns the finished statement in one call (long-poll).
	var lp statement
	_ = json.Unmarshal(do(t, "POST", base+"/sessions/0/statements", `{"code":"import time\ntime.sleep(2)\n6 * 7"}`, 201), &lp)
	_ = json.Unmarshal(do(t, "GET", fmt.Sprintf("%s/sessions/0/statements/%d?wait=60", base, lp.ID), "", 200), &lp)
	if lp.State != "available" || textOf(t, lp) != "42" {
		t.Fatalf("long-poll returned %s %s", lp.State, lp.Output)
	}
	do(t, "GET", base+"/sessions/0/statements/0?wait=301", "", 400)

	// Paging and order.
	var page struct {
		Total      int         `json:"total_statements"`
		Statements []statement `json:"statements"`
	}
	_ = json.Unmarshal(do(t, "GET", base+"/sessions/0/statements?order=desc&size=2", "", 200), &page)
	if len(page.Statements) != 2 || page.Statements[0].ID != page.Total-1 || page.Statements[1].ID != page.Total-2 {
		t.Fatalf("desc page = total %d, %+v", page.Total, page.Statements)
	}
	do(t, "GET", base+"/sessions/0/statements?order=sideways", "", 400)

	// Completion from the session namespace.
	run(t, base, 0, "srdd_probe_alpha = 1\nsrdd_probe_beta = 2")
	var comp struct{ Candidates []string }
	_ = json.Unmarshal(do(t, "POST", base+"/sessions/0/completion", `{"code":"x = srdd_probe_","kind":"pyspark","cursor":15}`, 200), &comp)
	if fmt.Sprint(comp.Candidates) != "[srdd_probe_alpha srdd_probe_beta]" {
		t.Fatalf("completion = %v", comp.Candidates)
	}
	do(t, "POST", base+"/sessions/0/completion", `{"code":"x","cursor":9}`, 400)
}

// Progress comes from Spark's job progress, and cancel really interrupts
// the Spark job (the job would run 60 s; the wait below allows 30).
func TestLivyProgressAndCancel(t *testing.T) {
	spark(t)
	_, base := sharedNode(t)
	var st struct {
		statement
		Progress float64 `json:"progress"`
	}
	_ = json.Unmarshal(do(t, "POST", base+"/sessions/0/statements",
		`{"code":"import time\nsc.parallelize(range(4), 4).map(lambda x: time.sleep(3 * x) or x).count()"}`, 201), &st)
	u := fmt.Sprintf("%s/sessions/0/statements/%d", base, st.ID)
	seen := []float64{}
	if err := testutil.WaitFor(2*time.Minute, func() (bool, error) {
		_ = json.Unmarshal(do(t, "GET", u, "", 200), &st)
		seen = append(seen, st.Progress)
		return st.State == "available" || (st.State == "running" && st.Progress > 0 && st.Progress < 1), nil
	}); err != nil || !(st.Progress > 0 && st.Progress < 1) {
		t.Fatalf("never saw partial progress of a running Spark job (state %s, seen %v): %v", st.State, seen, err)
	}
	_ = json.Unmarshal(do(t, "GET", u+"?wait=120", "", 200), &st)

	_ = json.Unmarshal(do(t, "POST", base+"/sessions/0/statements",
		`{"code":"import time\nsc.parallelize(range(2), 2).map(lambda x: time.sleep(60) or x).count()"}`, 201), &st)
	u = fmt.Sprintf("%s/sessions/0/statements/%d", base, st.ID)
	if err := testutil.WaitFor(time.Minute, func() (bool, error) {
		_ = json.Unmarshal(do(t, "GET", u, "", 200), &st)
		return st.State == "running", nil
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // let the Spark job's tasks start
	jsonEq(t, do(t, "POST", u+"/cancel", "", 200), `{"msg":"canceled"}`)
	_ = json.Unmarshal(do(t, "GET", u+"?wait=30", "", 200), &st)
	if st.State != "cancelled" {
		t.Fatalf("statement after cancel = %s %s; the Spark job was not interrupted", st.State, st.Output)
	}
	// The session still works afterwards.
	if got := textOf(t, run(t, base, 0, "sc.parallelize(range(10)).sum()")); got != "45" {
		t.Fatalf("after cancel: %s", got)
	}
}

// A sql session with Livy's create fields; addressing by name; its
// interpreter killed -9 makes it dead with the reason in its log, and its
// shared RDD lost; its statements stay readable.
func TestLivySQLSessionAndInterpreterDeath(t *testing.T) {
	spark(t)
	_, base := sharedNode(t)
	var s struct {
		ID        int64  `json:"id"`
		Name      string `json:"name"`
		Kind      string `json:"kind"`
		ProxyUser string `json:"proxyUser"`
		State     string `json:"state"`
		Log       []string
	}
	_ = json.Unmarshal(do(t, "POST", base+"/sessions", `{"kind":"sql","name":"reports","proxyUser":"alice",`+
		`"driverMemory":"512m","conf":{"spark.sql.shuffle.partitions":"2"},"heartbeatTimeoutInSecond":3600}`, 201), &s)
	if s.Name != "reports" || s.Kind != "sql" || s.ProxyUser != "alice" {
		t.Fatalf("created = %+v", s)
	}
	do(t, "POST", base+"/sessions", `{"name":"reports"}`, 409)
	if err := testutil.WaitFor(3*time.Minute, func() (bool, error) {
		_ = json.Unmarshal(do(t, "GET", base+"/sessions/reports", "", 200), &s)
		return s.State == "idle", nil
	}); err != nil {
		t.Fatalf("sql session by name: %v (%+v)", err, s)
	}
	// Statements default to SQL in a sql session; the conf was applied.
	st := run(t, base, s.ID, "SET spark.sql.shuffle.partitions")
	if !strings.Contains(string(st.Output), `"application/json"`) || !strings.Contains(string(st.Output), `"2"`) {
		t.Fatalf("sql session statement = %s", st.Output)
	}
	var comp struct{ Candidates []string }
	_ = json.Unmarshal(do(t, "POST", base+"/sessions/reports/completion", `{"code":"SEL"}`, 200), &comp)
	if len(comp.Candidates) != 0 {
		t.Fatalf("sql completion = %v", comp.Candidates)
	}
	do(t, "POST", base+"/v1/rdds", fmt.Sprintf(`{"name":"report_cache","session":%d,"mode":"memory"}`, s.ID), 201)
	do(t, "PUT", base+"/v1/rdds/report_cache/keys/q1", `1`, 204)

	pids := interpreterPIDs(t, sharedDir(t), s.ID)
	if len(pids) != 1 {
		t.Fatalf("interpreter processes of session %d: %v", s.ID, pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := testutil.WaitFor(time.Minute, func() (bool, error) {
		_ = json.Unmarshal(do(t, "GET", fmt.Sprintf("%s/sessions/%d", base, s.ID), "", 200), &s)
		return s.State == "dead", nil
	}); err != nil {
		t.Fatalf("session after kill -9: %+v", s)
	}
	var lg struct{ Log []string }
	_ = json.Unmarshal(do(t, "GET", fmt.Sprintf("%s/sessions/%d/log?size=1000", base, s.ID), "", 200), &lg)
	if !strings.Contains(strings.Join(lg.Log, "\n"), "interpreter exited") {
		t.Fatalf("log of the dead session lacks the reason: %q", lg.Log)
	}
	var info struct{ State, Message string }
	_ = json.Unmarshal(do(t, "GET", base+"/v1/rdds/report_cache", "", 200), &info)
	if info.State != "lost" {
		t.Fatalf("rdd of the dead session = %+v", info)
	}
	do(t, "GET", base+"/v1/rdds/report_cache/keys/q1", "", 410)
	do(t, "POST", fmt.Sprintf("%s/sessions/%d/statements", base, s.ID), `{"code":"SELECT 1"}`, 409)
	// Statements of the dead session are still there.
	var page struct {
		Statements []statement `json:"statements"`
	}
	_ = json.Unmarshal(do(t, "GET", fmt.Sprintf("%s/sessions/%d/statements", base, s.ID), "", 200), &page)
	if len(page.Statements) != 1 || page.Statements[0].State != "available" {
		t.Fatalf("statements of the dead session = %+v", page.Statements)
	}
	do(t, "DELETE", fmt.Sprintf("%s/sessions/%d", base, s.ID), "", 200)
	do(t, "GET", fmt.Sprintf("%s/sessions/%d", base, s.ID), "", 404)
	do(t, "GET", base+"/v1/rdds/report_cache", "", 404)
}

// interpreterPIDs finds the Python interpreter of a session of the node
// whose data dir is dir (its environment names the node's interpreter
// path, its command line the session id).
func interpreterPIDs(t *testing.T, dir string, session int64) []int {
	marker := []byte("PYTHONPATH=" + filepath.Join(dir, "interpreter"))
	want := []byte("\x00--session-id\x00" + strconv.FormatInt(session, 10) + "\x00")
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		env, err1 := os.ReadFile(filepath.Join(p, "environ"))
		cmd, err2 := os.ReadFile(filepath.Join(p, "cmdline"))
		if err1 != nil || err2 != nil || !bytes.Contains(cmd, []byte("srdd_interpreter")) || !bytes.Contains(cmd, want) {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if bytes.HasPrefix(kv, marker) {
				pid, _ := strconv.Atoi(filepath.Base(p))
				out = append(out, pid)
				break
			}
		}
	}
	return out
}
