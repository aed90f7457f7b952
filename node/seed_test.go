package node

import (
	"encoding/json"
	"strings"
	"testing"
)

// The seed article's walkthrough, verbatim shapes, against a real node.
func TestSeedWalkthrough(t *testing.T) {
	spark(t)
	_, base := sharedNode(t)

	if got := textOf(t, run(t, base, 0, "1 + 1")); got != "2" {
		t.Fatalf("1 + 1 -> %q, want \"2\"", got)
	}
	st := run(t, base, 0, "1 + 1")
	var out map[string]any
	_ = json.Unmarshal(st.Output, &out)
	if _, ok := out["execution_count"]; !ok || out["status"] != "ok" {
		t.Fatalf("output lacks Livy fields: %s", st.Output)
	}

	seed := "class ShareableRdd():\n\n" +
		"  def __init__(self):\n    self.data = sc.parallelize([])\n\n" +
		"  def get(self, key):\n    return self.data.filter(lambda row: row[0] == key).take(1)\n\n" +
		"  def set(self, key, value):\n    new_key = sc.parallelize([[key, value]])\n    self.data = self.data.union(new_key)\n\n" +
		"srdd = ShareableRdd()\nsrdd.set('ak', 'Alaska')\nsrdd.set('ca', 'California')\n"
	textOf(t, run(t, base, 0, seed))
	// A second client using the same session id sees the first one's variables.
	if got := textOf(t, run(t, base, 0, `srdd.get("ak")`)); got != "[['ak', 'Alaska']]" {
		t.Fatalf(`srdd.get("ak") -> %q`, got)
	}
	st = run(t, base, 0, "data = srdd.get(\"ak\")\n%json data")
	var js struct {
		Status string `json:"status"`
		Data   map[string]json.RawMessage
	}
	if err := json.Unmarshal(st.Output, &js); err != nil || js.Status != "ok" {
		t.Fatalf("%%json output %s", st.Output)
	}
	jsonEq(t, js.Data["application/json"], `[["ak","Alaska"]]`)

	st = run(t, base, 0, "undefined_name + 1")
	var e struct {
		Status    string   `json:"status"`
		Ename     string   `json:"ename"`
		Evalue    string   `json:"evalue"`
		Traceback []string `json:"traceback"`
	}
	if err := json.Unmarshal(st.Output, &e); err != nil {
		t.Fatal(err)
	}
	if st.State != "available" || e.Status != "error" || e.Ename != "NameError" ||
		!strings.Contains(e.Evalue, "undefined_name") || len(e.Traceback) == 0 {
		t.Fatalf("error output = %s (state %s)", st.Output, st.State)
	}

	// Livy listing shapes.
	var list struct {
		From     int `json:"from"`
		Total    int `json:"total"`
		Sessions []struct {
			ID    int64  `json:"id"`
			State string `json:"state"`
			Kind  string `json:"kind"`
		} `json:"sessions"`
	}
	_ = json.Unmarshal(do(t, "GET", base+"/sessions", "", 200), &list)
	if list.Total < 1 || list.Sessions[0].ID != 0 || list.Sessions[0].Kind != "pyspark" {
		t.Fatalf("GET /sessions = %+v", list)
	}
	var stmts struct {
		Total      int         `json:"total_statements"`
		Statements []statement `json:"statements"`
	}
	_ = json.Unmarshal(do(t, "GET", base+"/sessions/0/statements", "", 200), &stmts)
	if stmts.Total < 6 || len(stmts.Statements) != stmts.Total {
		t.Fatalf("GET statements = %d statements", stmts.Total)
	}
}
