package node

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// ackLog records every write a client saw acknowledged, per key, in the
// order the acknowledgements arrived (one writer per key, so that order is
// the order of the writes).
type ackLog struct {
	mu   sync.Mutex
	last map[string]string // key -> last acknowledged JSON value ("" = deleted)
	n    int
}

func (a *ackLog) ack(key, val string) {
	a.mu.Lock()
	a.last[key] = val
	a.n++
	a.mu.Unlock()
}

// writer sets and sometimes deletes its own keys until stop, retrying a
// write that failed (503 while the RDD is rebuilt) with the same
// Idempotency-Key until it is acknowledged.
func writer(base, rdd string, id int, stop <-chan struct{}, acks *ackLog, errs *atomic.Int64) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		key := fmt.Sprintf("w%d-%d", id, i%50)
		val := fmt.Sprintf(`{"w":%d,"i":%d}`, id, i)
		method, url, body := "PUT", base+"/v1/rdds/"+rdd+"/keys/"+key, val
		if i%7 == 6 {
			method, body, val = "DELETE", "", ""
		}
		idem := fmt.Sprintf("%s-%d-%d", rdd, id, i)
		for {
			req, _ := http.NewRequest(method, url, strings.NewReader(body))
			req.Header.Set("Idempotency-Key", idem)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 204 || (method == "DELETE" && resp.StatusCode == 404) {
					acks.ack(key, val)
					break
				}
			}
			errs.Add(1)
			select {
			case <-stop:
				return // never acknowledged: may or may not have happened
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// checkAcked reads every key a client wrote and compares it with the last
// acknowledged write.
func checkAcked(t *testing.T, base, rdd string, acks *ackLog) {
	t.Helper()
	acks.mu.Lock()
	defer acks.mu.Unlock()
	keys := make([]string, 0, len(acks.last))
	for k := range acks.last {
		keys = append(keys, k)
	}
	body, _ := json.Marshal(map[string]any{"keys": keys})
	var got struct {
		Values  map[string]json.RawMessage `json:"values"`
		Missing []string                   `json:"missing"`
	}
	_ = json.Unmarshal(do(t, "POST", base+"/v1/rdds/"+rdd+"/get", string(body), 200), &got)
	bad := 0
	for _, k := range keys {
		want := acks.last[k]
		v, ok := got.Values[k]
		if (want == "" && ok) || (want != "" && (!ok || !jsonSame(string(v), want))) {
			if bad < 5 {
				t.Errorf("key %s = %s (present %v), last acknowledged %q", k, v, ok, want)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d keys lost or wrong after recovery (%d acknowledged writes)", bad, len(keys), acks.n)
	}
}

func jsonSame(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

type rddInfo struct {
	Session    int64  `json:"session"`
	Mode       string `json:"mode"`
	State      string `json:"state"`
	Keys       *int64 `json:"keys"`
	Checkpoint *struct {
		Index uint64 `json:"index"`
		Path  string `json:"path"`
	} `json:"checkpoint"`
	TailWrites int `json:"tail_writes"`
}

func describe(t *testing.T, base, rdd string) rddInfo {
	t.Helper()
	var info rddInfo
	_ = json.Unmarshal(do(t, "GET", base+"/v1/rdds/"+rdd, "", 200), &info)
	return info
}

// Kill -9 the owner's interpreter 10 times under a steady write load:
// every acknowledged write is there afterwards and the RDD is ready again
// each time, rebuilt from its checkpoint and log in a new session.
func TestDurableSurvivesInterpreterKills(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.Durable.CheckpointEvery = 150 // several checkpoints, so rebuilds use checkpoint + tail
	cfg.Durable.Tick = 100 * time.Millisecond
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	base := "http://" + n.HTTPAddr()
	var info rddInfo
	_ = json.Unmarshal(do(t, "POST", base+"/v1/rdds", `{"name":"orders"}`, 201), &info)
	if info.Mode != "durable" {
		t.Fatalf("default mode = %q, want durable", info.Mode)
	}
	waitReady := func() {
		t.Helper()
		if err := waitFor(3*time.Minute, func() (bool, error) {
			info = describe(t, base, "orders")
			return info.State == "ready", nil
		}); err != nil {
			t.Fatalf("rdd not ready again: %+v", info)
		}
	}
	waitReady()

	acks := &ackLog{last: map[string]string{}}
	var errs atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() { defer wg.Done(); writer(base, "orders", w, stop, acks, &errs) }()
	}
	sessions := map[int64]bool{}
	checkpointed := 0
	var lastCkpt uint64
	for kill := 0; kill < 10; kill++ {
		time.Sleep(1500 * time.Millisecond) // writes land between kills
		if kill%2 == 1 {
			// Every other kill comes after a new checkpoint, so the
			// rebuild reads checkpoint + tail (the others: an older
			// checkpoint, or none, + a longer tail).
			if err := waitFor(time.Minute, func() (bool, error) {
				info = describe(t, base, "orders")
				return info.Checkpoint != nil && info.Checkpoint.Index > lastCkpt && info.TailWrites > 0, nil
			}); err != nil {
				t.Fatalf("kill %d: no new checkpoint: %+v", kill, info)
			}
		}
		info = describe(t, base, "orders")
		sessions[info.Session] = true
		if info.Checkpoint != nil {
			checkpointed++
			lastCkpt = info.Checkpoint.Index
		}
		pids := interpreterPIDs(t, dir, info.Session)
		if len(pids) != 1 {
			t.Fatalf("kill %d: interpreters of session %d: %v", kill, info.Session, pids)
		}
		if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := waitFor(time.Minute, func() (bool, error) {
			return describe(t, base, "orders").Session != info.Session, nil
		}); err != nil {
			t.Fatalf("kill %d: the rdd never moved out of dead session %d", kill, info.Session)
		}
		waitReady()
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	t.Logf("%d acknowledged writes, %d failed attempts (retried), %d sessions, %d rebuilds from a checkpoint",
		acks.n, errs.Load(), len(sessions), checkpointed)
	if acks.n < 100 {
		t.Fatalf("only %d writes acknowledged: the load did not run", acks.n)
	}
	if checkpointed == 0 {
		t.Fatal("no rebuild started from a checkpoint")
	}
	checkAcked(t, base, "orders", acks)

	// The whole node restarts: the data comes back too.
	n.Close()
	n2, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	base = "http://" + n2.HTTPAddr()
	waitReady()
	checkAcked(t, base, "orders", acks)
}

// Idempotency keys, read consistency levels, on-demand checkpoints with
// their Parquet layout, and writes by user code going through the log.
func TestDurableAPI(t *testing.T) {
	_, base := sharedNode(t)
	do(t, "POST", base+"/v1/rdds", `{"name":"dur_api","session":0,"mode":"durable"}`, 201)
	put := func(key, val, idem string) (int, string) {
		req, _ := http.NewRequest("PUT", base+"/v1/rdds/dur_api/keys/"+key, strings.NewReader(val))
		if idem != "" {
			req.Header.Set("Idempotency-Key", idem)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct{ Error struct{ Code string } }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Error.Code
	}
	if st, _ := put("a", `1`, "k1"); st != 204 {
		t.Fatalf("put = %d", st)
	}
	if st, _ := put("a", `2`, ""); st != 204 {
		t.Fatalf("put = %d", st)
	}
	// A retry of the first request applies nothing: a stays 2.
	if st, _ := put("a", `1`, "k1"); st != 204 {
		t.Fatalf("retried put = %d", st)
	}
	jsonEq(t, do(t, "GET", base+"/v1/rdds/dur_api/keys/a", "", 200), `{"key":"a","value":2}`)
	// The same key for another request is refused and changes nothing.
	if st, code := put("a", `3`, "k1"); st != 422 || code != "idempotency_mismatch" {
		t.Fatalf("reused key = %d %s", st, code)
	}
	jsonEq(t, do(t, "GET", base+"/v1/rdds/dur_api/keys/a?consistency=linearizable", "", 200), `{"key":"a","value":2}`)
	jsonEq(t, do(t, "GET", base+"/v1/rdds/dur_api/keys/a?consistency=stale", "", 200), `{"key":"a","value":2}`)
	do(t, "GET", base+"/v1/rdds/dur_api/keys/a?consistency=eventual", "", 400)
	if st, code := put("b", `{"x":1}`, strings.Repeat("k", 300)); st != 400 || code != "invalid" {
		t.Fatalf("oversized idempotency key = %d %s", st, code)
	}
	do(t, "GET", base+"/v1/rdds/dur_api/keys/b", "", 404)

	// User code's writes are logged like a client's: they are in the tail.
	before := describe(t, base, "dur_api").TailWrites
	if got := textOf(t, run(t, base, 0, "dur_api.set('c', {'from': 'code'}); dur_api.delete('a'); dur_api.get('c')")); got != "{'from': 'code'}" {
		t.Fatalf("statement = %s", got)
	}
	if after := describe(t, base, "dur_api").TailWrites; after != before+2 {
		t.Fatalf("tail writes %d -> %d, want +2 (user code's set and delete logged)", before, after)
	}
	do(t, "GET", base+"/v1/rdds/dur_api/keys/a", "", 404)
	if got := textOf(t, run(t, base, 0, "try:\n  dur_api.clear()\nexcept ValueError as e:\n  print('refused')")); got != "refused" {
		t.Fatalf("clear on a durable rdd = %s", got)
	}

	// An on-demand checkpoint covers the tail and is plain Parquet.
	var ck struct {
		Index uint64 `json:"index"`
		Path  string `json:"path"`
		Rows  int64  `json:"rows"`
	}
	_ = json.Unmarshal(do(t, "POST", base+"/v1/rdds/dur_api/checkpoint", "", 200), &ck)
	if ck.Rows != 1 || ck.Index == 0 {
		t.Fatalf("checkpoint = %+v", ck)
	}
	info := describe(t, base, "dur_api")
	if info.Checkpoint == nil || info.Checkpoint.Index != ck.Index || info.TailWrites != 0 {
		t.Fatalf("after checkpoint: %+v", info)
	}
	parts, _ := filepath.Glob(filepath.Join(ck.Path, "part-*.parquet"))
	if len(parts) == 0 {
		t.Fatalf("no parquet files in %s", ck.Path)
	}
	code := fmt.Sprintf("r = spark.read.parquet(%q).collect(); print(sorted((x.key, x.value, x.log_index) for x in r))", ck.Path)
	if got := textOf(t, run(t, base, 0, code)); got != fmt.Sprintf(`[('c', '{"from":"code"}', %d)]`, ck.Index) {
		t.Fatalf("checkpoint content = %s", got)
	}
	// A memory-mode RDD has no checkpoints.
	do(t, "POST", base+"/v1/rdds", `{"name":"dur_mem","session":0,"mode":"memory"}`, 201)
	do(t, "POST", base+"/v1/rdds/dur_mem/checkpoint", "", 400)
	do(t, "POST", base+"/v1/rdds", `{"name":"dur_bad","session":0,"mode":"sometimes"}`, 400)

	// Dropping a durable RDD deletes its checkpoints.
	dir := filepath.Dir(ck.Path)
	do(t, "DELETE", base+"/v1/rdds/dur_api", "", 204)
	if err := waitFor(30*time.Second, func() (bool, error) {
		_, err := os.Stat(dir)
		return os.IsNotExist(err), nil
	}); err != nil {
		t.Fatalf("checkpoints of a dropped rdd remain in %s", dir)
	}
}
