package node

import (
	"context"
	"encoding/json"
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
	_, base := sharedNode(t)
	c := srddclient.New(base)
	ctx := context.Background()
	if _, err := c.CreateRDD(ctx, "guarded", "0"); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "guarded", "k", json.RawMessage(`1`)); err != nil {
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
	root := filepath.Join(shared.dir, "files")
	f := func(op, body string, status int, code string) {
		t.Helper()
		st, b := rawDo("POST", base+"/v1/rdds/guarded/"+op, body)
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
	f("save", `{"path":`+q(shared.dir)+`,"overwrite":true}`, 403, "forbidden_path")
	f("save", `{"path":"http://127.0.0.1:1/x","overwrite":true}`, 400, "remote_uri_not_allowed")
	f("load", `{"path":"/etc/passwd","format":"csv"}`, 403, "forbidden_path")
	f("load", `{"path":`+q(secret)+`,"format":"csv"}`, 403, "forbidden_path")
	f("load", `{"path":`+q(filepath.Join(in, "link", "secret.csv"))+`,"format":"csv"}`, 403, "forbidden_path")
	f("load", `{"path":`+q(filepath.Join(in, "l*", "secret.csv"))+`,"format":"csv"}`, 403, "forbidden_path")
	f("load", `{"path":`+q(filepath.Join(shared.dir, "raft", "raft.db"))+`}`, 403, "forbidden_path")
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
	if _, err := c.Load(ctx, "guarded", bad, srddclient.LoadOptions{Format: "csv"}); err != nil {
		t.Fatal(err)
	}
	st, err := c.WaitLoad(ctx, "guarded", 100*time.Millisecond, nil)
	if err == nil || st.State != "failed" || strings.Contains(st.Error, "root:x") || strings.Contains(st.Error, "daemon") {
		t.Fatalf("load of a file without the key column = %+v, %v", st, err)
	}
	// a relative path is taken from the first root
	if res, err := c.Save(ctx, "guarded", filepath.Join(filepath.Base(in), "rel"), "jsonl", false); err != nil || res.Rows != 1 {
		t.Fatalf("save to a relative path = %+v, %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(in, "rel")); err != nil {
		t.Fatal(err)
	}
}
