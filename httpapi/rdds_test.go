package httpapi

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/srdd/srdd/kvstore"
	"github.com/valyala/fasthttp"
)

// createKV is the fake store that records the creates it is asked for.
type createKV struct {
	fakeKV
	got []kvstore.CreateRequest
}

func (k *createKV) Create(req kvstore.CreateRequest) (kvstore.RDDInfo, error) {
	k.got = append(k.got, req)
	return kvstore.RDDInfo{Name: req.Name}, nil
}

// TestCreateRDDBody: POST /v1/rdds refuses a field it does not take with
// 400 invalid naming the field, and asks the store for nothing (a
// misspelt "replica" used to be dropped silently); the fields it takes,
// replicas among them, reach the store as sent, an absent replicas as nil.
func TestCreateRDDBody(t *testing.T) {
	kv := &createKV{}
	s := New(Config{Store: kv, Sessions: fakeSessions{}, Batches: fakeBatches{}, Cluster: fakeCluster{},
		Registry: prometheus.NewRegistry(), PlaintextCluster: true, Version: "test"})
	for _, tc := range []struct{ body, field string }{
		{`{"name":"r2","replica":2}`, `"replica"`},
		{`{"name":"r2","replicas":2,"copies":3}`, `"copies"`},
		{`{"name":"r2","session":0,"durable":true}`, `"durable"`},
	} {
		ctx, _ := fakeRequest(s, nil, "", "POST", "/v1/rdds", tc.body)
		var e apiError
		_ = json.Unmarshal(ctx.Response.Body(), &e)
		if ctx.Response.StatusCode() != 400 || e.Error.Code != "invalid" ||
			!strings.Contains(e.Error.Message, "unknown field "+tc.field) || !strings.Contains(e.Error.Message, "replicas") {
			t.Errorf("%s: %d %s, want 400 invalid naming %s and the fields taken", tc.body, ctx.Response.StatusCode(), ctx.Response.Body(), tc.field)
		}
	}
	// A body that does not decode still says why, not "unknown field".
	ctx, _ := fakeRequest(s, nil, "", "POST", "/v1/rdds", `{"name":"r2","replicas":"two"}`)
	if ctx.Response.StatusCode() != 400 || !strings.Contains(string(ctx.Response.Body()), `field \"replicas\" must be a JSON number`) {
		t.Errorf("replicas as a string: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	if len(kv.got) != 0 {
		t.Fatalf("refused bodies reached the store: %+v", kv.got)
	}

	for _, body := range []string{`{"name":"r2","session":"s","mode":"memory","replicas":3}`, `{"name":"r3"}`} {
		if ctx, _ := fakeRequest(s, nil, "", "POST", "/v1/rdds", body); ctx.Response.StatusCode() != 201 {
			t.Fatalf("%s: %d %s", body, ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	if len(kv.got) != 2 {
		t.Fatalf("store asked %d times, want 2", len(kv.got))
	}
	if g := kv.got[0]; g.Name != "r2" || g.Session != "s" || g.Mode != "memory" || g.Replicas == nil || *g.Replicas != 3 {
		t.Errorf("store got %+v (replicas %v)", g, g.Replicas)
	}
	if g := kv.got[1]; g.Replicas != nil {
		t.Errorf("absent replicas reached the store as %d, want nil (the default)", *g.Replicas)
	}
}

// TestWriteValues: a batch get's answer, written without an encoder,
// decodes to what the encoder wrote: each found key once, each miss as
// asked, hostile keys escaped.
func TestWriteValues(t *testing.T) {
	keys := []string{"a", `q"uote`, "<&>", "ünï", "a", "gone", "tab\t", "gone", "nested"}
	vals := [][]byte{[]byte(`"x"`), []byte(`1`), []byte(`null`), []byte(`"\u003c"`), []byte(`"x"`), nil, []byte(`[]`), nil, []byte(`{"b":[1,{"c":"}"}]}`)}
	var resp fasthttp.Response
	resp.SetBodyString("left over")
	writeValues(&resp, keys, vals)
	if !json.Valid(resp.Body()) || resp.StatusCode() != 200 || string(resp.Header.ContentType()) != "application/json" {
		t.Fatalf("%d %s %s", resp.StatusCode(), resp.Header.ContentType(), resp.Body())
	}
	var got struct {
		Values  map[string]json.RawMessage `json:"values"`
		Missing []string                   `json:"missing"`
	}
	dec := json.NewDecoder(strings.NewReader(string(resp.Body())))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": `"x"`, `q"uote`: `1`, "<&>": `null`, "ünï": `"\u003c"`, "tab\t": `[]`, "nested": `{"b":[1,{"c":"}"}]}`}
	if len(got.Values) != len(want) || strings.Count(string(resp.Body()), `"a":`) != 1 {
		t.Fatalf("values %s", resp.Body())
	}
	for k, v := range want {
		if string(got.Values[k]) != v {
			t.Fatalf("%q = %s, want %s", k, got.Values[k], v)
		}
	}
	if strings.Join(got.Missing, ",") != "gone,gone" {
		t.Fatalf("missing %q", got.Missing)
	}
	writeValues(&resp, nil, nil)
	if string(resp.Body()) != `{"values":{},"missing":[]}` {
		t.Fatalf("no keys: %s", resp.Body())
	}
}

// plainBodies are batch bodies, some the fast path reads and some it
// leaves to the decoder.
var plainBodies = []string{
	`{"keys":[]}`, `{"keys":["a"]}`, `{"keys":["a","b","a"]}`, `{"keys":["ünï","a b",""]}`,
	`{"keys":["a\"b"]}`, `{"keys":["a\\b"]}`, `{"keys": ["a"]}`, `{"keys":["a"] }`, `{"keys":["a",]}`,
	`{"keys":["a","b"],"x":1}`, `{"keys":["a"],"keys":["b"]}`, `{"keys":["a","],"x":["b"]}`,
	"{\"keys\":[\"\xff\"]}", "{\"keys\":[\"a\tb\"]}", `{"keys":[1]}`, `{"keys":["a"`, `{"keys":["a""b"]}`,
}

// TestPlainKeys: what the fast path reads, the decoder reads the same.
func TestPlainKeys(t *testing.T) {
	read := 0
	for _, b := range plainBodies {
		if checkPlainKeys(t, []byte(b)) {
			read++
		}
	}
	if read != 4 {
		t.Fatalf("the fast path read %d bodies, want 4", read)
	}
}

// checkPlainKeys fails t if plainKeys reads body otherwise than the
// decoder does; it reports whether plainKeys read it.
func checkPlainKeys(t *testing.T, body []byte) bool {
	got, ok := plainKeys(body)
	if !ok {
		return false
	}
	var want struct{ Keys []string }
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&want); err != nil || dec.More() {
		t.Fatalf("%q read as %q, but the decoder says %v", body, got, err)
	}
	if !slices.Equal(got, want.Keys) || got == nil {
		t.Fatalf("%q read as %q, the decoder reads %q", body, got, want.Keys)
	}
	return true
}

func FuzzPlainKeys(f *testing.F) {
	for _, b := range plainBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkPlainKeys(t, body) })
}

// TestAuditLeavesOutReads: a batch get is a POST but a read: no audit
// line; a batch set has one, naming the RDD.
func TestAuditLeavesOutReads(t *testing.T) {
	var buf bytes.Buffer
	s := New(Config{Store: fakeKV{}, Sessions: fakeSessions{}, Batches: fakeBatches{}, Cluster: fakeCluster{},
		Registry: prometheus.NewRegistry(), PlaintextCluster: true, Version: "test",
		Logger: hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})})
	ctx, route := fakeRequest(s, nil, "", "POST", "/v1/rdds/r1/get", `{"keys":["k"]}`)
	s.auditLog(ctx, route)
	if buf.Len() != 0 || ctx.Response.StatusCode() != 200 {
		t.Fatalf("batch get: %d, audit %q", ctx.Response.StatusCode(), buf.String())
	}
	ctx, route = fakeRequest(s, nil, "", "POST", "/v1/rdds/r1/set", `{"items":{"k":1}}`)
	s.auditLog(ctx, route)
	if got := buf.String(); !strings.Contains(got, `route="POST /v1/rdds/{name}/set"`) || !strings.Contains(got, "rdd=r1") {
		t.Fatalf("batch set: %d, audit %q", ctx.Response.StatusCode(), got)
	}
}
