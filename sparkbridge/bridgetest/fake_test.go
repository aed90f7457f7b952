package bridgetest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/srdd/srdd/kvstore"
	"github.com/srdd/srdd/kvstore/datarules"
	"github.com/srdd/srdd/sparkbridge"
)

func TestMain(m *testing.M) {
	MaybeRun()
	os.Exit(m.Run())
}

// start runs the fake as a child of this test binary, through the real
// sparkbridge supervisor and protocol.
func start(t *testing.T) *sparkbridge.Interpreter {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	it, err := sparkbridge.Start(sparkbridge.Config{
		Python: exe, SessionID: 1, StartTimeout: 10 * time.Second,
		DataRules: kvstore.DefaultLimits().RulesJSON(),
		Env:       []string{sparkbridge.FakeInterpreterEnv + "=1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(it.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := it.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return it
}

func call(t *testing.T, it *sparkbridge.Interpreter, op string, args, out any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return it.Call(ctx, op, args, out)
}

// The shared vectors (kvstore/testdata/data_rules.json) hold for the fake
// as for the real interpreter: names on rdd.create, keys and values on
// kv.set and kv.apply, group sizes on grouped writes.
func TestFakeKeepsTheDataRules(t *testing.T) {
	b, err := os.ReadFile("../../kvstore/testdata/data_rules.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Names, Keys, Values []datarules.Case
		Groups              []struct {
			Groups []any  `json:"groups"`
			N      int    `json:"n"`
			Want   string `json:"want"`
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Names) == 0 || len(d.Keys) == 0 || len(d.Values) == 0 || len(d.Groups) == 0 {
		t.Fatal("data_rules.json has an empty section")
	}
	it := start(t)
	okErr := func(what string, in datarules.Input, want string, err error) {
		t.Helper()
		if (want == "ok") != (err == nil) || (err != nil && !sparkbridge.IsCode(err, sparkbridge.CodeInvalid)) {
			t.Errorf("%s %.60q: %v, want %s", what, string(in), err, want)
		}
	}
	for _, c := range d.Names {
		okErr("rdd.create", c.In, c.Want, call(t, it, "rdd.create", map[string]any{"name": string(c.In)}, nil))
	}
	if err := call(t, it, "rdd.create", map[string]any{"name": "v"}, nil); err != nil {
		t.Fatal(err)
	}
	for i, c := range d.Keys {
		okErr("kv.set key", c.In, c.Want, call(t, it, "kv.set", map[string]any{"name": "v",
			"items": [][]any{{string(c.In), []byte(`1`)}}}, nil))
		var res struct {
			Results []struct {
				E []*string `msgpack:"e"`
			} `msgpack:"results"`
		}
		err := call(t, it, "kv.apply", map[string]any{"name": "v", "entries": []map[string]any{
			{"i": i + 1, "k": []string{string(c.In)}, "v": [][]byte{[]byte(`1`)}, "g": []int{1}}}}, &res)
		if err != nil || len(res.Results) != 1 || len(res.Results[0].E) != 1 || (res.Results[0].E[0] == nil) != (c.Want == "ok") {
			t.Errorf("kv.apply key %.60q: %v %+v, want %s", string(c.In), err, res, c.Want)
		}
	}
	for _, c := range d.Values {
		okErr("kv.set value", c.In, c.Want, call(t, it, "kv.set", map[string]any{"name": "v",
			"items": [][]any{{"k", []byte(c.In)}}}, nil))
	}
	for _, c := range d.Groups {
		items := make([][]any, c.N)
		for i := range items {
			items[i] = []any{fmt.Sprint("g", i), []byte(`true`)}
		}
		// JSON has one number type; msgpack, like Python, tells 2 from 1.5.
		groups := make([]any, len(c.Groups))
		for i, g := range c.Groups {
			groups[i] = g
			if f, ok := g.(float64); ok && f == float64(int64(f)) {
				groups[i] = int64(f)
			}
		}
		in := datarules.Input(fmt.Sprint(c.Groups))
		okErr("kv.set groups", in, c.Want, call(t, it, "kv.set", map[string]any{"name": "v", "items": items, "groups": groups}, nil))
	}
}

// Writes, reads, scans, the log's once-only apply, and a checkpoint
// restored in a new fake.
func TestFakeKVAndDurableOps(t *testing.T) {
	it := start(t)
	must := func(op string, args, out any) {
		t.Helper()
		if err := call(t, it, op, args, out); err != nil {
			t.Fatalf("%s: %v", op, err)
		}
	}
	must("rdd.create", map[string]any{"name": "s"}, nil)
	if err := call(t, it, "rdd.create", map[string]any{"name": "s"}, nil); !sparkbridge.IsCode(err, sparkbridge.CodeExists) {
		t.Fatalf("second rdd.create = %v, want exists", err)
	}
	if err := call(t, it, "kv.get", map[string]any{"name": "nope", "keys": []string{"a"}}, nil); !sparkbridge.IsCode(err, sparkbridge.CodeRDDNotFound) {
		t.Fatalf("kv.get of an unknown RDD = %v, want rdd_not_found", err)
	}
	must("kv.set", map[string]any{"name": "s", "items": [][]any{{"a", []byte(` [1, 2] `)}, {"b", []byte(`"x"`)}, {"c", []byte(`3`)}}}, nil)
	var got struct {
		Values [][]byte `msgpack:"values"`
	}
	must("kv.get", map[string]any{"name": "s", "keys": []string{"a", "zz"}}, &got)
	if len(got.Values) != 2 || string(got.Values[0]) != `[1,2]` || got.Values[1] != nil {
		t.Fatalf("kv.get = %q", got.Values)
	}
	var sc struct {
		Items [][]any `msgpack:"items"`
		More  bool    `msgpack:"more"`
	}
	must("kv.scan", map[string]any{"name": "s", "after": "a", "limit": 1}, &sc)
	if len(sc.Items) != 1 || sc.Items[0][0] != "b" || !sc.More {
		t.Fatalf("kv.scan = %+v", sc)
	}
	var del struct {
		Deleted int   `msgpack:"deleted"`
		Counts  []int `msgpack:"counts"`
	}
	must("kv.delete", map[string]any{"name": "s", "keys": []string{"a", "zz", "b"}, "groups": []int{2, 1}}, &del)
	if del.Deleted != 2 || len(del.Counts) != 2 || del.Counts[0] != 1 || del.Counts[1] != 1 {
		t.Fatalf("kv.delete = %+v", del)
	}
	entries := []map[string]any{
		{"i": 5, "k": []string{"d", "e"}, "v": [][]byte{[]byte(`1`), []byte(`1e400`)}, "g": []int{1, 1}},
		{"i": 6, "d": true, "k": []string{"c"}, "g": []int{1}},
	}
	must("kv.apply", map[string]any{"name": "s", "entries": entries}, nil)
	// A retried push applies nothing twice: index 5 again would re-set d.
	must("kv.set", map[string]any{"name": "s", "items": [][]any{{"d", []byte(`2`)}}}, nil)
	must("kv.apply", map[string]any{"name": "s", "entries": entries[:1]}, nil)
	var n struct {
		Count int `msgpack:"count"`
	}
	must("kv.count", map[string]any{"name": "s"}, &n)
	if n.Count != 1 { // d only: e was refused, c deleted
		t.Fatalf("kv.count = %d, want 1", n.Count)
	}
	ck := filepath.Join(t.TempDir(), "ck", "s-6")
	must("rdd.checkpoint", map[string]any{"name": "s", "path": "file://" + ck, "index": 6}, nil)

	it2 := start(t)
	if err := call(t, it2, "rdd.create", map[string]any{"name": "s"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := call(t, it2, "rdd.restore", map[string]any{"name": "s", "path": ck, "index": 6}, nil); err != nil {
		t.Fatal(err)
	}
	if err := call(t, it2, "kv.get", map[string]any{"name": "s", "keys": []string{"d"}}, &got); err != nil || string(got.Values[0]) != `2` {
		t.Fatalf("after restore kv.get = %q, %v", got.Values, err)
	}
	var gc struct {
		Deleted int `msgpack:"deleted"`
	}
	if err := call(t, it2, "path.gc", map[string]any{"dir": filepath.Dir(ck), "keep": []string{}}, &gc); err != nil || gc.Deleted != 1 {
		t.Fatalf("path.gc = %+v, %v", gc, err)
	}
	var out map[string]any
	if err := call(t, it2, "execute", map[string]any{"code": "1 + 1"}, &out); err != nil || out["status"] != "error" {
		t.Fatalf("execute = %v, %v: statements need Spark", out, err)
	}
}
