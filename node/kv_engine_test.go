package node

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	srddclient "github.com/srdd/srdd/client/go"
	"github.com/srdd/srdd/internal/testutil"
)

// Overwrites and deletes made over REST stay correct after the write delta
// is compacted into a new base (from code, with states.compact()), and the
// key count stays exact.
func TestOverwriteAndDeleteAcrossCompaction(t *testing.T) {
	base, c, ctx := sharedRDD(t, "churn")
	items := map[string]json.RawMessage{}
	for i := 0; i < 300; i++ {
		items[fmt.Sprintf("k%03d", i)] = json.RawMessage(strconv.Itoa(i))
	}
	if _, err := c.SetMany(ctx, "churn", items); err != nil {
		t.Fatal(err)
	}
	textOf(t, run(t, base, 0, "churn.compact()"))
	// overwrite, delete and re-insert keys that now live in the base
	for i := 0; i < 300; i += 3 {
		if err := c.Set(ctx, "churn", fmt.Sprintf("k%03d", i), json.RawMessage(`"new"`)); err != nil {
			t.Fatal(err)
		}
	}
	var doomed []string
	for i := 1; i < 300; i += 3 {
		doomed = append(doomed, fmt.Sprintf("k%03d", i))
	}
	if n, err := c.DeleteMany(ctx, "churn", doomed); err != nil || n != len(doomed) {
		t.Fatalf("delete = %d, %v", n, err)
	}
	check := func(stage string) {
		t.Helper()
		vals, missing, err := c.GetMany(ctx, "churn", []string{"k000", "k001", "k002", "k297", "k298", "k299"})
		if err != nil {
			t.Fatal(err)
		}
		if string(vals["k000"]) != `"new"` || string(vals["k002"]) != "2" || string(vals["k297"]) != `"new"` ||
			string(vals["k299"]) != "299" || len(missing) != 2 {
			t.Fatalf("%s: values %v missing %v", stage, vals, missing)
		}
		if n, err := c.Count(ctx, "churn"); err != nil || n != 200 {
			t.Fatalf("%s: count = %d, %v; want 200", stage, n, err)
		}
	}
	check("before compaction")
	textOf(t, run(t, base, 0, "churn.compact()"))
	check("after compaction")
	if err := c.Delete(ctx, "churn", "k001"); !srddclient.IsNotFound(err) {
		t.Fatalf("deleting a key deleted before compaction: %v", err)
	}
	if err := c.Set(ctx, "churn", "k001", json.RawMessage(`"back"`)); err != nil {
		t.Fatal(err)
	}
	textOf(t, run(t, base, 0, "churn.compact()"))
	got, err := c.Get(ctx, "churn", "k001")
	if err != nil || string(got) != `"back"` {
		t.Fatalf("re-inserted key = %s, %v", got, err)
	}
	if got := textOf(t, run(t, base, 0, `(churn.count(), churn.get("k003"), churn.stats()["compactions"] >= 3)`)); got != "(201, 'new', True)" {
		t.Fatalf("code view = %s", got)
	}
}

// states.rdd and states.df hold the current data: the compacted base plus
// writes and deletes still in the delta.
func TestRDDAndDataFrameIncludePendingWrites(t *testing.T) {
	base, c, ctx := sharedRDD(t, "views")
	if _, err := c.SetMany(ctx, "views", map[string]json.RawMessage{"a": json.RawMessage("1"), "b": json.RawMessage("2"), "c": json.RawMessage("3")}); err != nil {
		t.Fatal(err)
	}
	textOf(t, run(t, base, 0, "views.compact()"))
	_ = c.Set(ctx, "views", "b", json.RawMessage(`{"now":20}`))
	_ = c.Set(ctx, "views", "d", json.RawMessage(`4`))
	if err := c.Delete(ctx, "views", "a"); err != nil {
		t.Fatal(err)
	}
	code := "sorted(views.rdd.collect())"
	if got := textOf(t, run(t, base, 0, code)); got != "[('b', {'now': 20}), ('c', 3), ('d', 4)]" {
		t.Fatalf("views.rdd = %s", got)
	}
	code = "sorted((r.key, r.value) for r in views.df.collect())"
	if got := textOf(t, run(t, base, 0, code)); got != `[('b', '{"now":20}'), ('c', '3'), ('d', '4')]` {
		t.Fatalf("views.df = %s", got)
	}
	// SQL over the same data, and a join keeps the key partitioning.
	code = "views.df.createOrReplaceTempView('v')\nspark.sql('select count(*) as n from v').collect()[0].n"
	if got := textOf(t, run(t, base, 0, code)); got != "3" {
		t.Fatalf("sql count = %s", got)
	}
}

func TestScanCountLoadSave(t *testing.T) {
	base, c, ctx := sharedRDD(t, "bulk")
	items := map[string]json.RawMessage{}
	for i := 0; i < 250; i++ {
		items[fmt.Sprintf("user:%04d", i)] = json.RawMessage(fmt.Sprintf(`{"i":%d,"s":"é\"q"}`, i))
	}
	items["other"] = json.RawMessage(`[1,2]`)
	if _, err := c.SetMany(ctx, "bulk", items); err != nil {
		t.Fatal(err)
	}
	textOf(t, run(t, base, 0, "bulk.compact()"))
	_ = c.Set(ctx, "bulk", "user:9999", json.RawMessage(`"pending"`))
	_ = c.Delete(ctx, "bulk", "user:0007")

	// scan pages through every key with the prefix, in order, exactly once
	var keys []string
	cursor := ""
	pages := 0
	for {
		page, err := c.Scan(ctx, "bulk", "user:", cursor, 40)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, kv := range page.Items {
			keys = append(keys, kv.Key)
		}
		if page.Cursor == "" {
			break
		}
		cursor = page.Cursor
	}
	if len(keys) != 250 || pages != 7 || keys[0] != "user:0000" || keys[249] != "user:9999" || contains(keys, "user:0007") {
		t.Fatalf("scan: %d keys in %d pages, first %q last %q", len(keys), pages, keys[0], keys[len(keys)-1])
	}
	for i := 1; i < len(keys); i++ {
		if keys[i-1] >= keys[i] {
			t.Fatalf("scan out of order at %d: %q, %q", i, keys[i-1], keys[i])
		}
	}
	b := do(t, "GET", base+"/v1/rdds/bulk/scan?prefix=user%3A001&limit=2", "", 200)
	jsonEq(t, b, `{"items":[{"key":"user:0010","value":{"i":10,"s":"é\"q"}},{"key":"user:0011","value":{"i":11,"s":"é\"q"}}],"cursor":"`+base64.RawURLEncoding.EncodeToString([]byte("user:0011"))+`"}`)
	do(t, "GET", base+"/v1/rdds/bulk/scan?limit=0", "", 400)
	do(t, "GET", base+"/v1/rdds/bulk/scan?cursor=%25%25", "", 400)
	do(t, "GET", base+"/v1/rdds/nope/scan", "", 404)
	if n, err := c.Count(ctx, "bulk"); err != nil || n != 251 {
		t.Fatalf("count = %d, %v", n, err)
	}

	dir := filesDir(t)
	for _, format := range []string{"jsonl", "csv", "parquet"} {
		path := filepath.Join(dir, "out."+format)
		res, err := c.Save(ctx, "bulk", path, format, false)
		if err != nil || res.Rows != 251 {
			t.Fatalf("save %s = %+v, %v", format, res, err)
		}
		if _, err := c.Save(ctx, "bulk", path, format, false); err == nil || !strings.Contains(err.Error(), "400") {
			t.Fatalf("save over an existing path: %v", err)
		}
		name := "copy_" + format
		if _, err := c.CreateRDD(ctx, name, "0"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Load(ctx, name, path, srddclient.LoadOptions{Format: format}); err != nil {
			t.Fatal(err)
		}
		var seen []srddclient.LoadStatus
		st, err := c.WaitLoad(ctx, name, 100*time.Millisecond, func(s srddclient.LoadStatus) { seen = append(seen, s) })
		if err != nil || st.State != "done" || st.Rows != 251 || st.Percent != 100 || st.RowsPerSec <= 0 {
			t.Fatalf("load %s: %+v, %v", format, st, err)
		}
		for _, s := range seen {
			if s.State == "running" && (s.Percent < 0 || s.Percent > 100) {
				t.Fatalf("progress out of range: %+v", s)
			}
		}
		vals, missing, err := c.GetMany(ctx, name, []string{"user:0001", "user:9999", "other", "user:0007"})
		if err != nil || len(missing) != 1 || string(vals["user:9999"]) != `"pending"` || string(vals["other"]) != "[1,2]" {
			t.Fatalf("loaded %s: %v %v %v", format, vals, missing, err)
		}
		jsonEq(t, vals["user:0001"], `{"i":1,"s":"é\"q"}`)
	}
	if b, err := os.ReadFile(firstPart(t, filepath.Join(dir, "out.jsonl"))); err != nil || !strings.Contains(string(b), `{"key":"`) {
		t.Fatalf("jsonl part file: %.200s %v", b, err)
	}

	// a bad file fails the load, says why, and changes nothing
	bad := filepath.Join(dir, "bad.jsonl")
	_ = os.WriteFile(bad, []byte("{\"key\":\"user:0001\",\"value\":\"replaced\"}\n{\"key\":\"x\",\"value\":1e400}\n"), 0o644)
	if _, err := c.Load(ctx, "bulk", bad, srddclient.LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := c.WaitLoad(ctx, "bulk", 100*time.Millisecond, nil)
	if err == nil || st.State != "failed" || st.Error == "" {
		t.Fatalf("bad load = %+v, %v", st, err)
	}
	got, _ := c.Get(ctx, "bulk", "user:0001")
	jsonEq(t, got, `{"i":1,"s":"é\"q"}`)
	f := func(body string, status int) {
		t.Helper()
		do(t, "POST", base+"/v1/rdds/bulk/load", body, status)
	}
	f(`{"path":""}`, 400)
	f(`{"path":"/x","format":"xml"}`, 400)
	f(`{"path":"/x","mode":"upsert"}`, 400)
	do(t, "POST", base+"/v1/rdds/bulk/save", `{"path":"/x","format":"xml"}`, 400)
	do(t, "GET", base+"/v1/rdds/bulk/count", "", 200)
	do(t, "POST", base+"/v1/rdds/bulk/count", "", 405)
}

// Concurrent gets on one RDD become fewer bridge calls.
func TestConcurrentGetsCoalesce(t *testing.T) {
	base, c, ctx := sharedRDD(t, "hot")
	for i := 0; i < 64; i++ {
		if err := c.Set(ctx, "hot", fmt.Sprintf("k%d", i), json.RawMessage(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	metric := func(name string) float64 {
		line := metricLine(string(do(t, "GET", base+"/metrics", "", 200)), name)
		v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		return v
	}
	callsBefore := metric(`srdd_bridge_call_duration_seconds_count{op="kv.get"}`)
	const rounds, clients = 5, 64
	for r := 0; r < rounds; r++ {
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, clients)
		for i := 0; i < clients; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				v, err := c.Get(ctx, "hot", fmt.Sprintf("k%d", i))
				if err == nil && string(v) != strconv.Itoa(i) {
					err = fmt.Errorf("k%d = %s", i, v)
				}
				errs <- err
			}(i)
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	calls := metric(`srdd_bridge_call_duration_seconds_count{op="kv.get"}`) - callsBefore
	if calls <= 0 || calls >= rounds*clients {
		t.Fatalf("%d gets took %.0f bridge calls; concurrent gets should share calls", rounds*clients, calls)
	}
	reqs := metric(`srdd_kv_batch_requests_sum{op="get"}`)
	batches := metric(`srdd_kv_batch_requests_count{op="get"}`)
	if batches == 0 || reqs/batches <= 1 {
		t.Fatalf("batch histogram: %.0f requests in %.0f calls", reqs, batches)
	}
}

// docs/ARCHITECTURE.md invariant 6: while a statement's Spark job holds every task slot, and
// while another RDD loads, KV calls that need no Spark job are answered.
func TestKVNotBlockedByStatementOrOtherRDDJob(t *testing.T) {
	spark(t)
	_, base := sharedNode(t)
	c := srddclient.New(base)
	ctx := context.Background()
	for _, name := range []string{"calm", "loading"} {
		if _, err := c.CreateRDD(ctx, name, "0"); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.Set(ctx, "calm", "k", json.RawMessage(`"v"`))
	var st statement
	_ = json.Unmarshal(do(t, "POST", base+"/sessions/0/statements",
		`{"code":"import time\nsc.parallelize(range(8), 8).map(lambda x: time.sleep(30) or x).count()"}`, 201), &st)
	stURL := fmt.Sprintf("%s/sessions/0/statements/%d", base, st.ID)
	defer func() {
		do(t, "POST", stURL+"/cancel", "", 200)
		_ = testutil.WaitFor(time.Minute, func() (bool, error) {
			_ = json.Unmarshal(do(t, "GET", stURL, "", 200), &st)
			return st.State == "cancelled" || st.State == "available", nil
		})
	}()
	if err := testutil.WaitFor(time.Minute, func() (bool, error) {
		_ = json.Unmarshal(do(t, "GET", stURL, "", 200), &st)
		return st.State == "running", nil
	}); err != nil {
		t.Fatalf("statement never started: %v", err)
	}
	// another RDD's load (Spark jobs) starts too, and will wait for slots
	src := filepath.Join(filesDir(t), "in.jsonl")
	var sb strings.Builder
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&sb, "{\"key\":\"r%d\",\"value\":%d}\n", i, i)
	}
	_ = os.WriteFile(src, []byte(sb.String()), 0o644)
	if _, err := c.Load(ctx, "loading", src, srddclient.LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, "calm", "k")
	if err != nil || string(got) != `"v"` {
		t.Fatalf("get = %s, %v", got, err)
	}
	if err := c.Set(ctx, "calm", "k2", json.RawMessage(`"w"`)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetMany(ctx, "loading", map[string]json.RawMessage{"r1": json.RawMessage(`"written during the load"`)}); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Count(ctx, "calm"); err != nil || n != 2 {
		t.Fatalf("count = %d, %v", n, err)
	}
	if err := c.Delete(ctx, "calm", "k2"); err != nil {
		t.Fatal(err)
	}
	r, err := c.DescribeRDD(ctx, "loading")
	if err != nil || r.Load == nil {
		t.Fatalf("describe during load = %+v, %v", r, err)
	}
	_ = json.Unmarshal(do(t, "GET", stURL, "", 200), &st)
	if st.State != "running" {
		t.Fatalf("statement state after KV calls = %s; they should have finished while it ran", st.State)
	}
	do(t, "POST", stURL+"/cancel", "", 200)
	// the load finishes once the slots free up; the write made during it wins
	if _, err := c.WaitLoad(ctx, "loading", 100*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	got, _ = c.Get(ctx, "loading", "r1")
	if string(got) != `"written during the load"` {
		t.Fatalf("r1 after the load = %s", got)
	}
	got, _ = c.Get(ctx, "loading", "r999")
	if string(got) != "999" {
		t.Fatalf("r999 after the load = %s", got)
	}
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func firstPart(t *testing.T, dir string) string {
	t.Helper()
	parts, _ := filepath.Glob(filepath.Join(dir, "part-*"))
	for _, p := range parts {
		if fi, err := os.Stat(p); err == nil && fi.Size() > 0 {
			return p
		}
	}
	t.Fatalf("no non-empty part file in %s", dir)
	return ""
}
