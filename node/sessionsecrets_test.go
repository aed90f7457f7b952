package node

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/srdd/srdd/auth"
	"github.com/srdd/srdd/internal/testutil"
)

// probeCode is session code that reports what it can find: its
// environment, its own and its parent's (the node's) command line, the
// node's environment, the session token it was handed, its uid, and the
// contents of files (a leading "ERR:" and the exception's name when it
// cannot read one). files is a JSON list of paths.
func probeCode(files []string) string {
	if files == nil {
		files = []string{}
	}
	list, _ := json.Marshal(files)
	return `
import os, json
from srdd_interpreter import durable
def _rd(p):
    try:
        with open(p, 'rb') as f:
            return f.read(1 << 16).decode('latin-1')
    except Exception as e:
        return 'ERR:' + type(e).__name__
print(json.dumps({"env": dict(os.environ), "self": _rd('/proc/self/cmdline'),
    "parent": _rd('/proc/%d/cmdline' % os.getppid()), "parent_env": _rd('/proc/%d/environ' % os.getppid()),
    "token": durable._session_token or "", "uid": os.getuid(),
    "files": {p: _rd(p) for p in json.loads('` + string(list) + `')}}))
`
}

type probe struct {
	Env       map[string]string `json:"env"`
	Self      string            `json:"self"`
	Parent    string            `json:"parent"`
	ParentEnv string            `json:"parent_env"`
	Token     string            `json:"token"`
	UID       int               `json:"uid"`
	Files     map[string]string `json:"files"`
}

// runProbe runs probeCode in session id as cred and decodes its report.
func runProbe(t *testing.T, base, cred string, id int64, files []string) probe {
	t.Helper()
	text := outputText(t, []byte(run2(t, base, cred, id, probeCode(files))), "probe")
	var p probe
	if err := json.Unmarshal([]byte(text), &p); err != nil {
		t.Fatalf("probe output %q: %v", text, err)
	}
	return p
}

// secretUsers writes a users file with ana (code and every RDD role) and
// root (admin) and returns it with their bearer credentials.
func secretUsers(t *testing.T, dir string) (string, map[string]string) {
	t.Helper()
	users := filepath.Join(dir, "users.json")
	return users, writeUsers(t, users, map[string][]string{"ana": {"code", "create:*", "write:*", "read:*"}, "root": {"admin"}}, nil)
}

// newSession creates a session as cred and waits until it is idle.
func newSession(t *testing.T, base, cred string) int64 {
	t.Helper()
	var s struct {
		ID int64 `json:"id"`
	}
	postCreated(t, base+"/sessions", `{"kind":"pyspark"}`, cred, &s)
	err := testutil.WaitFor(4*time.Minute, func() (bool, error) {
		_, _, b := authDo("GET", fmt.Sprintf("%s/sessions/%d/state", base, s.ID), "", cred)
		if strings.Contains(string(b), `"dead"`) || strings.Contains(string(b), `"error"`) {
			_, _, log := authDo("GET", fmt.Sprintf("%s/sessions/%d/log", base, s.ID), "", cred)
			return false, fmt.Errorf("session failed: %s; log: %s", b, log)
		}
		return strings.Contains(string(b), `"idle"`), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s.ID
}

// TestSessionsHoldNoSecret (docs/ARCHITECTURE.md, "Sessions hold no
// secret"): session code finds neither the cluster key nor any user's or
// node-wide token in its environment or either command line, even when
// the node's own environment holds them. What it holds is its session's
// capability, which reads and writes that session's own RDDs and nothing
// else, and stops working once the session is deleted.
func TestSessionsHoldNoSecret(t *testing.T) {
	spark(t)
	dir := t.TempDir()
	users, creds := secretUsers(t, dir)
	clusterKey, _ := auth.NewToken()
	// An operator's environment: srdd's own variables of the key and a
	// client token, and a cloud secret. None may reach session code.
	t.Setenv("SRDD_CLUSTER_KEY", clusterKey)
	t.Setenv("SRDD_TOKEN", strings.TrimPrefix(creds["root"], "Bearer "))
	t.Setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-of-the-node")
	cfg := testConfig(t, filepath.Join(dir, "data"))
	cfg.AuthFile, cfg.ClusterKey = users, clusterKey
	_, base := startNode(t, cfg)
	ana := creds["ana"]

	s1 := newSession(t, base, ana)
	s2 := newSession(t, base, ana)
	for name, s := range map[string]int64{"mine": s1, "theirs": s2} {
		if st, _, b := authDo("POST", base+"/v1/rdds", fmt.Sprintf(`{"name":%q,"session":%d,"mode":"durable"}`, name, s), ana); st != 201 {
			t.Fatalf("create %s: %d %s", name, st, b)
		}
	}

	p := runProbe(t, base, ana, s1, nil)
	secrets := map[string]string{
		"the cluster key": clusterKey, "root's token": strings.TrimPrefix(creds["root"], "Bearer "),
		"ana's token": strings.TrimPrefix(ana, "Bearer "), "a cloud secret": "aws-secret-of-the-node",
	}
	for what, secret := range secrets {
		for k, v := range p.Env {
			if strings.Contains(v, secret) {
				t.Errorf("session code finds %s in its environment (%s)", what, k)
			}
		}
		if strings.Contains(p.Self, secret) || strings.Contains(p.Parent, secret) {
			t.Errorf("session code finds %s on a command line", what)
		}
	}
	for _, name := range []string{"SRDD_CLUSTER_KEY", "SRDD_TOKEN", "SRDD_NODE_TOKEN", "AWS_SECRET_ACCESS_KEY"} {
		if _, ok := p.Env[name]; ok {
			t.Errorf("session code's environment has %s", name)
		}
	}
	if p.Token == "" {
		t.Fatal("the session holds no capability: how do its durable writes authenticate?")
	}
	for k, v := range p.Env {
		if strings.Contains(v, p.Token) {
			t.Errorf("the session's capability is in its environment (%s): other processes of its user can read it there", k)
		}
	}
	if strings.Contains(p.Self, p.Token) {
		t.Error("the session's capability is on its command line")
	}

	// Session code still writes its durable RDD (through the node, with
	// the capability), with auth on.
	if out := run2(t, base, ana, s1, "mine.set('from-code', 42); mine.get('from-code')"); !strings.Contains(out, "42") {
		t.Fatalf("durable write from session code: %s", out)
	}
	if st, _, b := authDo("GET", base+"/v1/rdds/mine/keys/from-code", "", ana); st != 200 || !strings.Contains(string(b), "42") {
		t.Fatalf("the logged write: %d %s", st, b)
	}

	// The capability: its own RDD's keys, nothing else.
	cap := "Bearer " + p.Token
	call := func(method, path, body string, want int) {
		t.Helper()
		if st, _, b := authDo(method, base+path, body, cap); st != want {
			t.Errorf("%s %s with the session's capability: %d, want %d: %s", method, path, st, want, b)
		}
	}
	call("PUT", "/v1/rdds/mine/keys/cap", `"own"`, 204)
	call("GET", "/v1/rdds/mine/keys/cap", "", 200)
	call("POST", "/v1/rdds/mine/set", `{"items":{"a":1}}`, 200)
	call("POST", "/v1/rdds/mine/get", `{"keys":["a"]}`, 200)
	call("POST", "/v1/rdds/mine/delete", `{"keys":["a"]}`, 200)
	call("GET", "/v1/rdds/mine", "", 200)
	call("PUT", "/v1/rdds/theirs/keys/cap", `"not-mine"`, 403)
	call("POST", "/v1/rdds/theirs/set", `{"items":{"a":1}}`, 403)
	call("GET", "/v1/rdds/theirs/keys/cap", "", 403)
	call("DELETE", "/v1/rdds/mine", "", 403) // no drops
	call("POST", "/v1/rdds/mine/checkpoint", `{}`, 403)
	call("POST", "/v1/rdds", fmt.Sprintf(`{"name":"more","session":%d}`, s1), 403)
	call("POST", "/sessions", `{"kind":"pyspark"}`, 403)
	call("POST", fmt.Sprintf("/sessions/%d/statements", s1), `{"code":"1+1"}`, 403)
	call("POST", fmt.Sprintf("/sessions/%d/completion", s1), `{"code":"pri"}`, 403)
	call("GET", fmt.Sprintf("/sessions/%d", s1), "", 403)
	call("DELETE", fmt.Sprintf("/sessions/%d", s2), "", 403)
	call("GET", "/sessions", "", 403)
	call("GET", "/v1/rdds", "", 403)
	call("GET", "/v1/cluster", "", 403)
	call("GET", "/metrics", "", 403)
	call("DELETE", "/v1/cluster/nodes/n1", "", 403)
	call("POST", "/v1/cluster/join", `{"id":"evil","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`, 403)
	call("GET", "/internal/v1/index", "", 403)
	// It cannot vouch for a user either.
	st, _, b := authDo2Headers("PUT", base+"/v1/rdds/theirs/keys/cap", `"x"`, map[string]string{"Authorization": cap, "X-Srdd-Principal": "ana"})
	if st != 401 && st != 403 {
		t.Errorf("capability vouching for ana: %d %s", st, b)
	}
	if st, _, b := authDo("GET", base+"/v1/rdds/theirs/keys/cap", "", ana); st != 404 {
		t.Errorf("theirs/cap after the refused writes: %d %s, want 404", st, b)
	}

	// It dies with its session.
	if st, _, b := authDo("DELETE", fmt.Sprintf("%s/sessions/%d", base, s1), "", ana); st != 200 {
		t.Fatalf("delete session: %d %s", st, b)
	}
	if st, _, b := authDo("GET", base+"/v1/rdds/theirs/keys/cap", "", cap); st != 401 {
		t.Fatalf("a deleted session's capability: %d %s, want 401", st, b)
	}
	// And with an interpreter that dies on its own.
	p2 := runProbe(t, base, ana, s2, nil)
	if p2.Token == "" || p2.Token == p.Token {
		t.Fatalf("session %d's capability %q (session %d's: %q)", s2, p2.Token, s1, p.Token)
	}
	cap2 := "Bearer " + p2.Token
	if st, _, b := authDo("PUT", base+"/v1/rdds/theirs/keys/k", `1`, cap2); st != 204 {
		t.Fatalf("session %d's capability on its own RDD: %d %s", s2, st, b)
	}
	if st, _, b := authDo("POST", fmt.Sprintf("%s/sessions/%d/statements", base, s2), `{"code":"import os; os._exit(3)"}`, ana); st != 201 {
		t.Fatalf("statement: %d %s", st, b)
	}
	err := testutil.WaitFor(time.Minute, func() (bool, error) {
		st, _, _ := authDo("GET", base+"/v1/rdds/theirs/keys/k", "", cap2)
		return st == 401, nil
	})
	if err != nil {
		t.Fatalf("the capability of a session whose interpreter died: %v", err)
	}
}

// authDo2Headers sends a request with the given headers.
func authDo2Headers(method, url, body string, headers map[string]string) (int, http.Header, []byte) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, []byte(err.Error())
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, []byte(err.Error())
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		k, err := resp.Body.Read(buf)
		b.Write(buf[:k])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, resp.Header, []byte(b.String())
}

// interpreterPython returns a Python with pyspark that account uid can
// run, and the PYTHONPATH it needs: the test Python itself if uid can run
// it, else the system Python of the same version over the test Python's
// site-packages (a test Python under /root is out of reach of other
// users). It skips the test when there is none.
func interpreterPython(t *testing.T, uid, gid uint32) (python, pythonPath string) {
	t.Helper()
	canImport := func(py, path string) bool {
		cmd := exec.Command(py, "-c", "import pyspark, msgpack")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/tmp"}
		if path != "" {
			cmd.Env = append(cmd.Env, "PYTHONPATH="+path)
		}
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}}
		return cmd.Run() == nil
	}
	py := testutil.Python(t)
	if canImport(py, "") {
		return py, ""
	}
	out, err := exec.Command(py, "-c", "import sys, sysconfig; print('%d.%d' % sys.version_info[:2]); print(sysconfig.get_paths()['purelib'])").Output()
	if err != nil {
		t.Fatalf("cannot ask %s for its version: %v", py, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) == 2 {
		sys := "/usr/bin/python" + lines[0]
		if _, err := os.Stat(sys); err == nil && canImport(sys, lines[1]) {
			return sys, lines[1]
		}
	}
	t.Skipf("no Python with pyspark that uid %d can run (the test Python %s is out of its reach, and no /usr/bin/python%s can use its site-packages)", uid, py, lines[0])
	return "", ""
}

// TestInterpreterUser: with --interpreter-user, session code runs as that
// account and cannot read the Raft log, the users file, key files or the
// node's environment; it still writes its durable RDD and the node's
// checkpoint of it (Spark writes the Parquet files as that account).
// Only root can start processes as another user.
func TestInterpreterUser(t *testing.T) {
	spark(t)
	if os.Geteuid() != 0 {
		t.Skip("--interpreter-user needs the node to run as root; CI runs as root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("no account nobody: %v", err)
	}
	uid, _ := strconv.ParseUint(nobody.Uid, 10, 32)
	gid, _ := strconv.ParseUint(nobody.Gid, 10, 32)
	python, dir := otherUserSetup(t, uint32(uid), uint32(gid), "srdd-interp-user-")
	users, creds := secretUsers(t, dir)
	ca := newTestCA(t)
	_, keyPEM := ca.issue(t, "127.0.0.1", 20, true)
	keyFile := writeFile(t, filepath.Join(dir, "peer-key.pem"), keyPEM)
	clusterKey, _ := auth.NewToken()
	keyFileOfCluster := writeFile(t, filepath.Join(dir, "cluster.key"), []byte(clusterKey))

	cfg := testConfig(t, filepath.Join(dir, "data"))
	cfg.Python = python
	cfg.AuthFile, cfg.ClusterKey, cfg.InterpreterUser = users, clusterKey, "nobody"
	_, base := startNode(t, cfg)
	ana := creds["ana"]
	raftDB := filepath.Join(dir, "data", "raft", "raft.db")
	for _, f := range []string{raftDB, users, keyFile, keyFileOfCluster} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "data")); err != nil || st.Mode().Perm()&0o007 != 0 {
		t.Fatalf("data dir: %v %v, want no access for others", st.Mode(), err)
	}
	if st, err := os.Stat(filepath.Join(dir, "data", "raft")); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("raft dir: %v %v, want 0700", st.Mode(), err)
	}

	s := newSession(t, base, ana)
	p := runProbe(t, base, ana, s, []string{raftDB, users, keyFile, keyFileOfCluster})
	if p.UID != int(uid) {
		t.Fatalf("session code runs as uid %d, want nobody (%d)", p.UID, uid)
	}
	for f, got := range p.Files {
		if got != "ERR:PermissionError" {
			t.Errorf("session code reading %s: %.40q, want a PermissionError", f, got)
		}
	}
	if !strings.HasPrefix(p.ParentEnv, "ERR:") {
		t.Error("session code reads the node's environment (/proc/<ppid>/environ)")
	}
	for k, v := range p.Env {
		if strings.Contains(v, clusterKey) {
			t.Errorf("session code finds the cluster key in its environment (%s)", k)
		}
	}
	if strings.Contains(p.Self, clusterKey) || strings.Contains(p.Parent, clusterKey) {
		t.Error("session code finds the cluster key on a command line")
	}
	if home := p.Env["HOME"]; !strings.HasPrefix(home, filepath.Join(dir, "data", "work")+"/") {
		t.Errorf("HOME of session code = %q, want its work dir", home)
	}

	// Durable writes from session code and the node's checkpoints work.
	if st, _, b := authDo("POST", base+"/v1/rdds", fmt.Sprintf(`{"name":"kept","session":%d,"mode":"durable"}`, s), ana); st != 201 {
		t.Fatalf("create kept: %d %s", st, b)
	}
	if out := run2(t, base, ana, s, "kept.set('k', 'v'); kept.get('k')"); !strings.Contains(out, `'v'`) && !strings.Contains(out, `\"v\"`) {
		t.Fatalf("durable write from session code as nobody: %s", out)
	}
	if st, _, b := authDo("POST", base+"/v1/rdds/kept/checkpoint", `{}`, ana); st != 200 {
		t.Fatalf("checkpoint written by the interpreter as nobody: %d %s", st, b)
	}
	if st, _, b := authDo("GET", base+"/v1/rdds/kept/keys/k", "", ana); st != 200 || !strings.Contains(string(b), `"v"`) {
		t.Fatalf("kept/k: %d %s", st, b)
	}

	// A Livy batch's driver is user code too: it runs as nobody and
	// reads none of the node's files.
	var code strings.Builder
	code.WriteString("import os\nprint('UID', os.getuid())\n")
	for _, f := range []string{raftDB, users, keyFile, keyFileOfCluster} {
		fmt.Fprintf(&code, "try:\n    open(%q, 'rb').read(1)\n    print('READ', %q)\nexcept PermissionError:\n    print('DENIED', %q)\n", f, f, f)
	}
	probe := writeFile(t, filepath.Join(dir, "data", "files", "probe.py"), []byte(code.String()))
	if err := os.Chmod(probe, 0o644); err != nil {
		t.Fatal(err)
	}
	state, logBody := runBatchAs(t, base, probe, ana)
	if state != "success" {
		t.Fatalf("batch ended %s: %s", state, logBody)
	}
	if !strings.Contains(string(logBody), fmt.Sprintf("UID %d", uid)) {
		t.Errorf("the batch's driver did not run as nobody (uid %d): %s", uid, logBody)
	}
	if strings.Contains(string(logBody), "READ ") || strings.Count(string(logBody), "DENIED ") != 4 {
		t.Errorf("the batch's driver read a node file, or did not try: %s", logBody)
	}
}

// otherUserSetup prepares a node whose interpreters run as uid:gid: the
// Python they may run (PYTHONPATH set for the test when it needs one)
// and a fresh data parent dir every user may traverse (as /var/lib is),
// so only the node's own modes keep other users out.
func otherUserSetup(t *testing.T, uid, gid uint32, prefix string) (python, dir string) {
	t.Helper()
	python, pyPath := interpreterPython(t, uid, gid)
	if pyPath != "" {
		t.Setenv("PYTHONPATH", pyPath)
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return python, dir
}
