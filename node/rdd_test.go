package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"

	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	srddclient "github.com/srdd/srdd/client/go"
	"github.com/srdd/srdd/internal/testutil"
)

func TestSharedRDDAPI(t *testing.T) {
	spark(t)
	_, base := sharedNode(t)
	c := srddclient.New(base)
	ctx := context.Background()

	r, err := c.CreateRDD(ctx, "states", "0")
	if err != nil {
		t.Fatal(err)
	}
	if r.Session != 0 || r.Mode != "durable" || r.State != "ready" || r.Keys == nil || *r.Keys != 0 {
		t.Fatalf("created = %+v", r)
	}
	if _, err := c.CreateRDD(ctx, "states", "0"); err == nil || !strings.Contains(err.Error(), "409") {
		t.Fatalf("duplicate create: %v", err)
	}
	values := map[string]string{
		"ak": `"Alaska"`, "ca": `{"name":"California","pop":39.0,"tags":["west",null,true]}`,
		"n": `42`, "big": `123456789012345678901234567890`, "u": `"Zürich ✓"`,
	}
	for k, v := range values {
		if err := c.Set(ctx, "states", k, json.RawMessage(v)); err != nil {
			t.Fatalf("set %s: %v", k, err)
		}
	}
	for k, v := range values {
		got, err := c.Get(ctx, "states", k)
		if err != nil {
			t.Fatalf("get %s: %v", k, err)
		}
		jsonEq(t, got, v)
	}
	// Overwrite returns the newest value (the seed returned the oldest).
	if err := c.Set(ctx, "states", "ak", json.RawMessage(`"ALASKA"`)); err != nil {
		t.Fatal(err)
	}
	got, _ := c.Get(ctx, "states", "ak")
	jsonEq(t, got, `"ALASKA"`)

	// REST writes are visible to code in the owning session, by name, and
	// states.rdd is a real pair RDD.
	code := `(states.get("ak"), states.get("ca")["pop"], sorted(states.rdd.filter(lambda kv: isinstance(kv[1], str)).keys().collect()))`
	if got := textOf(t, run(t, base, 0, code)); got != `('ALASKA', 39.0, ['ak', 'u'])` {
		t.Fatalf("code view of REST writes = %s", got)
	}
	// Code writes are visible to REST.
	textOf(t, run(t, base, 0, `states.set("hi", {"name": "Hawaii"}); states.delete("n")`))
	got, err = c.Get(ctx, "states", "hi")
	if err != nil {
		t.Fatal(err)
	}
	jsonEq(t, got, `{"name":"Hawaii"}`)
	if _, err := c.Get(ctx, "states", "n"); !srddclient.IsNotFound(err) {
		t.Fatalf("key deleted by code: %v", err)
	}

	// Batch get and set.
	n, err := c.SetMany(ctx, "states", map[string]json.RawMessage{"tx": json.RawMessage(`"Texas"`), "ny": json.RawMessage(`"New York"`)})
	if err != nil || n != 2 {
		t.Fatalf("set many = %d, %v", n, err)
	}
	vals, missing, err := c.GetMany(ctx, "states", []string{"tx", "ny", "zz"})
	if err != nil || len(vals) != 2 || len(missing) != 1 || missing[0] != "zz" {
		t.Fatalf("get many = %v %v %v", vals, missing, err)
	}
	jsonEq(t, vals["ny"], `"New York"`)

	// Listing and describe report the key count and owner.
	list, err := c.ListRDDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, x := range list {
		if x.Name == "states" {
			found = true
			if x.Keys == nil || *x.Keys != 7 || x.Node != "n1" || x.State != "ready" {
				t.Fatalf("listing = %+v (keys %v)", x, x.Keys)
			}
		}
	}
	if !found {
		t.Fatalf("states missing from listing %+v", list)
	}

	// Delete one key, then drop the RDD: gone from REST and from code.
	if err := c.Delete(ctx, "states", "tx"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "states", "tx"); !srddclient.IsNotFound(err) {
		t.Fatalf("second delete: %v", err)
	}
	if err := c.DropRDD(ctx, "states"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "states", "ak"); !srddclient.IsNotFound(err) {
		t.Fatalf("get after drop: %v", err)
	}
	if got := textOf(t, run(t, base, 0, `"states" in shared_rdds`)); got != "False" {
		t.Fatalf("rdd still bound in session after drop: %s", got)
	}
}

// docs/ARCHITECTURE.md invariant 1: keys, values and names are data, never code.
func TestHostileKeysAreData(t *testing.T) {
	base, c, ctx := sharedRDD(t, "hostile")
	marker := filepath.Join(t.TempDir(), "pwned")
	keys := []string{
		`x"); import os; os.system("touch ` + marker + `"); ("`,
		`'; __import__('os').system('touch ` + marker + `'); '`,
		"a/b/../c", "..", "%2F", "key with spaces", "日本語", "\"\"\"", "{}", "\\", "line\nbreak",
	}
	for i, k := range keys {
		v := fmt.Sprintf(`{"i":%d,"code":"__import__('os').system('touch %s')"}`, i, marker)
		if err := c.Set(ctx, "hostile", k, json.RawMessage(v)); err != nil {
			t.Fatalf("set %q: %v", k, err)
		}
	}
	for i, k := range keys {
		got, err := c.Get(ctx, "hostile", k)
		if err != nil {
			t.Fatalf("get %q: %v", k, err)
		}
		var v struct{ I int }
		if err := json.Unmarshal(got, &v); err != nil || v.I != i {
			t.Fatalf("get %q = %s, want i=%d", k, got, i)
		}
	}
	// The same keys through code and a batch call come back exact.
	b, _ := json.Marshal(keys)
	textOf(t, run(t, base, 0, "import json as _j\nassert sorted(hostile.keys()) == sorted(_j.loads("+pyString(string(b))+"))"))
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("a key or value was executed as code: %s exists", marker)
	}
}

// pyString renders s as a Python string literal via JSON (test code only:
// the test author's own statement, not the service building code).
func pyString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestBadInputIsRejectedAndChangesNothing(t *testing.T) {
	_, base := sharedNode(t)
	do(t, "POST", base+"/v1/rdds", `{"name":"guarded","session":0}`, 201)
	do(t, "PUT", base+"/v1/rdds/guarded/keys/k", `"original"`, 204)
	bigKey := strings.Repeat("k", 1025)
	bigValue := `"` + strings.Repeat("v", 1<<20) + `"`
	f := func(method, path, body string, status int, code string) {
		t.Helper()
		st, b := rawDo(method, base+path, body)
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if st != status || json.Unmarshal(b, &e) != nil || e.Error.Code != code || e.Error.Message == "" {
			t.Fatalf("%s %s: %d %s; want %d with code %q", method, path, st, truncate(b), status, code)
		}
	}
	f("POST", "/v1/rdds", `{"name":`, 400, "invalid")
	f("POST", "/v1/rdds", `{"name":"1bad"}`, 400, "invalid")
	f("POST", "/v1/rdds", `{"name":"has-dash"}`, 400, "invalid")
	f("POST", "/v1/rdds", `{"name":"class"}`, 400, "invalid")
	f("POST", "/v1/rdds", `{"name":"sc"}`, 400, "invalid")
	f("POST", "/v1/rdds", `{"name":"ok_name","session":999}`, 404, "session_not_found")
	f("POST", "/v1/rdds", `{"name":"ok_name","session":0,"mode":"weird"}`, 400, "invalid")
	f("POST", "/v1/rdds", `{"name":"guarded","session":0}`, 409, "exists")
	f("GET", "/v1/rdds/nope", "", 404, "rdd_not_found")
	f("GET", "/v1/rdds/nope/keys/k", "", 404, "rdd_not_found")
	f("GET", "/v1/rdds/guarded/keys/missing", "", 404, "key_not_found")
	f("PUT", "/v1/rdds/guarded/keys/k", `not json`, 400, "invalid")
	f("PUT", "/v1/rdds/guarded/keys/k", ``, 400, "invalid")
	f("PUT", "/v1/rdds/guarded/keys/k", `1e400`, 400, "invalid")
	f("PUT", "/v1/rdds/guarded/keys/k", `{"a":NaN}`, 400, "invalid")
	f("PUT", "/v1/rdds/guarded/keys/"+bigKey, `1`, 413, "too_large")
	f("PUT", "/v1/rdds/guarded/keys/k", bigValue, 413, "too_large")
	f("PUT", "/v1/rdds/guarded/keys/%FF", `1`, 400, "invalid")
	f("POST", "/v1/rdds/guarded/set", `{"items":{"k":"new","bad":1e400}}`, 400, "invalid")
	f("POST", "/v1/rdds/guarded/set", `{"items":{}}`, 400, "invalid")
	f("POST", "/v1/rdds/guarded/get", `{"keys":"k"}`, 400, "invalid")
	f("PATCH", "/v1/rdds/guarded", "", 405, "method_not_allowed")
	f("POST", "/v1/rdds/guarded/keys/k", "1", 405, "method_not_allowed")
	f("GET", "/v2/whatever", "", 404, "no_route")
	f("GET", "/sessions/999", "", 404, "session_not_found")
	f("POST", "/sessions/0/statements", `{"kode":"1"}`, 400, "invalid")
	f("POST", "/sessions/0/statements", `{"code":"1","kind":"sparkr"}`, 400, "invalid")
	f("POST", "/sessions", `{"kind":"sparkr"}`, 400, "invalid")
	f("POST", "/sessions", `{"name":"12"}`, 400, "invalid")
	f("GET", "/sessions/0/statements/999", "", 404, "statement_not_found")
	f("GET", "/sessions/0/statements/x", "", 400, "invalid")
	f("GET", "/sessions?from=1&size=9223372036854775807", "", 400, "invalid")
	f("GET", "/sessions/0/statements?from=1&size=99999999999", "", 400, "invalid")
	f("GET", "/sessions/0/log?from=1&size=99999999999", "", 400, "invalid")

	// A malformed escape cannot be sent with net/http; send it raw.
	if st := rawTCPStatus(t, base, "PUT /v1/rdds/guarded/keys/%zz HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n1"); st != 400 {
		t.Fatalf("malformed escape: status %d, want 400", st)
	}

	// An oversized body is refused from its Content-Length, before it is
	// read (past the 8 KiB the server reads before it knows the caller).
	if st := rawTCPStatus(t, base, "POST /v1/rdds/guarded/set HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\n\r\n{"+strings.Repeat(" ", 8<<10)); st != 413 {
		t.Fatalf("oversized body: status %d, want 413", st)
	}

	// Nothing above changed the data.
	got := do(t, "GET", base+"/v1/rdds/guarded/keys/k", "", 200)
	jsonEq(t, got, `{"key":"k","value":"original"}`)
	var info struct{ Keys int }
	_ = json.Unmarshal(do(t, "GET", base+"/v1/rdds/guarded", "", 200), &info)
	if info.Keys != 1 {
		t.Fatalf("keys after bad input = %d, want 1", info.Keys)
	}
	do(t, "GET", base+"/v1/rdds/ok_name", "", 404)
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// docs/ARCHITECTURE.md invariant 6: KV calls are served while a long statement runs.
func TestKVNotBlockedByLongStatement(t *testing.T) {
	spark(t)
	_, base := sharedNode(t)
	do(t, "POST", base+"/v1/rdds", `{"name":"busy","session":0}`, 201)
	do(t, "PUT", base+"/v1/rdds/busy/keys/k", `"v"`, 204)
	var st statement
	_ = json.Unmarshal(do(t, "POST", base+"/sessions/0/statements",
		`{"code":"import time\nsc.parallelize(range(2), 2).map(lambda x: time.sleep(10) or x).count()"}`, 201), &st)
	stURL := fmt.Sprintf("%s/sessions/0/statements/%d", base, st.ID)
	if err := testutil.WaitFor(time.Minute, func() (bool, error) {
		_ = json.Unmarshal(do(t, "GET", stURL, "", 200), &st)
		return st.State == "running", nil
	}); err != nil {
		t.Fatalf("statement never started: %v", err)
	}
	jsonEq(t, do(t, "GET", base+"/v1/rdds/busy/keys/k", "", 200), `{"key":"k","value":"v"}`)
	do(t, "PUT", base+"/v1/rdds/busy/keys/k2", `"w"`, 204)
	_ = json.Unmarshal(do(t, "GET", stURL, "", 200), &st)
	if st.State != "running" {
		t.Fatalf("statement state after KV calls = %s; the KV calls should have finished while it ran", st.State)
	}
	// Cancel it so the session is free for other tests.
	do(t, "POST", stURL+"/cancel", "", 200)
	if err := testutil.WaitFor(time.Minute, func() (bool, error) {
		_ = json.Unmarshal(do(t, "GET", stURL, "", 200), &st)
		return st.State == "cancelled" || st.State == "available", nil
	}); err != nil {
		t.Fatalf("cancel: %v (state %s)", err, st.State)
	}
}

func TestMetricsAndHealth(t *testing.T) {
	spark(t)
	_, base := sharedNode(t)
	do(t, "POST", base+"/v1/rdds", `{"name":"metered","session":0}`, 201)
	do(t, "PUT", base+"/v1/rdds/metered/keys/a", `1`, 204)
	do(t, "GET", base+"/v1/rdds/metered/keys/a", "", 200)
	jsonEq(t, do(t, "GET", base+"/healthz", "", 200), `{"status":"ok","node":"n1"}`)
	m := string(do(t, "GET", base+"/metrics", "", 200))
	for _, want := range []string{
		`srdd_http_request_duration_seconds_count{route="GET /v1/rdds/{name}/keys/{key}",status="2xx"}`,
		`srdd_http_request_duration_seconds_count{route="PUT /v1/rdds/{name}/keys/{key}",status="2xx"}`,
		`srdd_bridge_call_duration_seconds_count{op="kv.get"}`,
		`srdd_bridge_call_duration_seconds_count{op="kv.set"}`,
		`srdd_interpreter_ready_seconds_count`,
		`go_goroutines`,
	} {
		line := metricLine(m, want)
		if line == "" {
			t.Fatalf("metric %s missing", want)
		}
		if strings.HasSuffix(line, " 0") {
			t.Fatalf("metric %s is zero after traffic", line)
		}
	}
}

func metricLine(all, prefix string) string {
	for _, l := range strings.Split(all, "\n") {
		if strings.HasPrefix(l, prefix+" ") {
			return l
		}
	}
	return ""
}

// rawTCPStatus sends a hand-written request and returns the status code.
func rawTCPStatus(t *testing.T, base, req string) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
