package node

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	srddclient "github.com/srdd/srdd/client/go"
)

// errorCode returns the code of an error body.
func errorCode(t *testing.T, b []byte) string {
	t.Helper()
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("not an error body: %s", b)
	}
	return e.Error.Code
}

// Loads and saves stay inside the file roots (issue 13): outside paths,
// '..', symlinks out of a root and the root itself answer 403 and nothing
// is read or touched; remote URIs answer 400; a load's error never echoes
// the file.
func TestFileRootsConfineLoadAndSave(t *testing.T) {
	base, c, ctx := sharedRDD(t, "rooted")
	if err := c.Set(ctx, "rooted", "k", json.RawMessage(`1`)); err != nil {
		t.Fatal(err)
	}
	victim := t.TempDir()
	keep := filepath.Join(victim, "keep")
	if err := os.WriteFile(keep, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := filesDir(t)
	if err := os.Symlink(victim, filepath.Join(in, "link")); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(victim, "secret.csv")
	if err := os.WriteFile(secret, []byte("root:x:0:0,y\n1,2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(sharedDir(t), "files")
	f := func(op, body string, status int, code string) {
		t.Helper()
		st, b := rawDo("POST", base+"/v1/rdds/rooted/"+op, body)
		if st != status || errorCode(t, b) != code {
			t.Fatalf("%s %s = %d %s, want %d %s", op, body, st, b, status, code)
		}
		if strings.Contains(string(b), "root:x") {
			t.Fatalf("%s %s echoes file content: %s", op, body, b)
		}
	}
	q := func(p string) string { b, _ := json.Marshal(p); return string(b) }
	f("save", `{"path":`+q(victim)+`,"overwrite":true}`, 403, "forbidden_path")
	f("save", `{"path":`+q(filepath.Join(in, "..", "..", "..", filepath.Base(filepath.Dir(victim)), filepath.Base(victim)))+`,"overwrite":true}`, 403, "forbidden_path")
	f("save", `{"path":`+q(filepath.Join(in, "link"))+`,"overwrite":true}`, 403, "forbidden_path")
	f("save", `{"path":`+q(root)+`,"overwrite":true}`, 403, "forbidden_path")
	f("save", `{"path":`+q(sharedDir(t))+`,"overwrite":true}`, 403, "forbidden_path")
	f("save", `{"path":"http://127.0.0.1:1/x","overwrite":true}`, 400, "remote_uri_not_allowed")
	f("load", `{"path":"/etc/passwd","format":"csv"}`, 403, "forbidden_path")
	f("load", `{"path":`+q(secret)+`,"format":"csv"}`, 403, "forbidden_path")
	f("load", `{"path":`+q(filepath.Join(in, "link", "secret.csv"))+`,"format":"csv"}`, 403, "forbidden_path")
	f("load", `{"path":`+q(filepath.Join(in, "l*", "secret.csv"))+`,"format":"csv"}`, 403, "forbidden_path")
	f("load", `{"path":`+q(filepath.Join(sharedDir(t), "raft", "raft.db"))+`}`, 403, "forbidden_path")
	f("load", `{"path":"hdfs://namenode/x"}`, 400, "remote_uri_not_allowed")
	if b, err := os.ReadFile(keep); err != nil || string(b) != "precious" {
		t.Fatalf("the directory outside the roots was touched: %q %v", b, err)
	}
	if ents, _ := os.ReadDir(victim); len(ents) != 2 {
		t.Fatalf("the directory outside the roots has %d entries", len(ents))
	}

	// a load that fails on a file inside a root names no column values
	bad := filepath.Join(in, "header.csv")
	if err := os.WriteFile(bad, []byte("root:x:0:0,daemon:x:1:1\n1,2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(ctx, "rooted", bad, srddclient.LoadOptions{Format: "csv"}); err != nil {
		t.Fatal(err)
	}
	st, err := c.WaitLoad(ctx, "rooted", 100*time.Millisecond, nil)
	if err == nil || st.State != "failed" || strings.Contains(st.Error, "root:x") || strings.Contains(st.Error, "daemon") {
		t.Fatalf("load of a file without the key column = %+v, %v", st, err)
	}
	// a relative path is taken from the first root
	if res, err := c.Save(ctx, "rooted", filepath.Join(filepath.Base(in), "rel"), "jsonl", false); err != nil || res.Rows != 1 {
		t.Fatalf("save to a relative path = %+v, %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(in, "rel")); err != nil {
		t.Fatal(err)
	}
}

// Limits (issue 13): sessions per node and RDDs per node answer 429
// naming the flag; the statement history keeps the newest --max-statements
// within --max-statement-bytes (on disk too), trimmed ones answer 404
// saying so, and code over the byte limit answers 413.
func TestLimits(t *testing.T) {
	spark(t)
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.MaxSessions, cfg.MaxRDDs = 1, 1
	cfg.MaxStatements, cfg.MaxStatementBytes = 3, 2048
	_, base := startNode(t, cfg)
	if err := createSessionAndWait(base, `{"kind":"pyspark"}`); err != nil {
		t.Fatal(err)
	}
	limited := func(st int, b []byte, status int, code, flag string) {
		t.Helper()
		if st != status || errorCode(t, b) != code || !strings.Contains(string(b), flag) {
			t.Fatalf("got %d %s, want %d %s naming %s", st, b, status, code, flag)
		}
	}
	st, b := rawDo("POST", base+"/sessions", `{"kind":"pyspark"}`)
	limited(st, b, 429, "limit_reached", "--max-sessions")
	do(t, "POST", base+"/v1/rdds", `{"name":"one","session":0}`, 201)
	st, b = rawDo("POST", base+"/v1/rdds", `{"name":"two","session":0}`)
	limited(st, b, 429, "limit_reached", "--max-rdds")

	for i := 0; i < 6; i++ {
		if got := textOf(t, run(t, base, 0, fmt.Sprintf("%d + 1", i))); got != fmt.Sprint(i+1) {
			t.Fatalf("statement %d = %q", i, got)
		}
	}
	var list struct {
		Total      int         `json:"total_statements"`
		Statements []statement `json:"statements"`
	}
	_ = json.Unmarshal(do(t, "GET", base+"/sessions/0/statements", "", 200), &list)
	if list.Total != 3 || list.Statements[0].ID != 3 || list.Statements[2].ID != 5 {
		t.Fatalf("kept statements: %+v", list)
	}
	st, b = rawDo("GET", base+"/sessions/0/statements/0", "")
	if st != 404 || !strings.Contains(string(b), "trimmed") {
		t.Fatalf("trimmed statement = %d %s", st, b)
	}
	code, _ := json.Marshal(map[string]string{"code": "x = '" + strings.Repeat("a", 3000) + "'"})
	st, b = rawDo("POST", base+"/sessions/0/statements", string(code))
	limited(st, b, 413, "too_large", "--max-statement-bytes")
	// a long output pushes older statements out by bytes
	textOf(t, run(t, base, 0, "print('b' * 1900)"))
	_ = json.Unmarshal(do(t, "GET", base+"/sessions/0/statements", "", 200), &list)
	if list.Total >= 3 || list.Statements[list.Total-1].ID != 6 {
		t.Fatalf("kept %d statements after a long output, last %d", list.Total, list.Statements[list.Total-1].ID)
	}
	for i := 0; i < 20; i++ {
		run(t, base, 0, "print('c' * 1000)")
	}
	fi, err := os.Stat(filepath.Join(dir, "sessions", "0", "statements.jsonl"))
	if err != nil || fi.Size() > 3*2048+4096 {
		t.Fatalf("statement history on disk: %v, %v", fi, err)
	}
}
