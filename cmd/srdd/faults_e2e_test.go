//go:build faults

// The fault tests (issue 22; `make test-faults`, a CI step of its own):
// bad set-ups and failing starts on real bin/srdd processes. Each must end
// with a clear error naming the missing piece and nothing lost, and no
// loop may grow the registry or the disk without bound.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/srdd/srdd/internal/testutil"
)

// faultNode is a bin/srdd server started by a fault test, with its output.
type faultNode struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	hc   *http.Client
	base string // http(s)://addr
	user string // user:password for HTTP Basic, if any

	mu     sync.Mutex
	out    []string
	exited chan struct{}
	err    error
}

// nodeEnv is the environment of a started node: the test's, without
// SRDD_PYTHON (TestMain sets it), so --python defaults as for a user.
func nodeEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SRDD_PYTHON=") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// startNode runs a server command (argv, or a shell line in dir) and
// waits until it announces its address or exits.
func startNode(t *testing.T, dir string, env []string, argv ...string) *faultNode {
	t.Helper()
	n := &faultNode{t: t, cmd: exec.Command(argv[0], argv[1:]...), exited: make(chan struct{}), hc: &http.Client{Timeout: 30 * time.Second}}
	n.cmd.Dir, n.cmd.Env = dir, env
	pr, pw := io.Pipe()
	n.cmd.Stdout, n.cmd.Stderr = pw, pw
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		n.err = n.cmd.Wait()
		pw.Close()
	}()
	addrCh := make(chan string, 1)
	go func() {
		defer close(n.exited)
		re := regexp.MustCompile(`serving on (https?)://(\S+)`)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			n.mu.Lock()
			n.out = append(n.out, sc.Text())
			n.mu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrCh <- m[1] + "://" + m[2]
			}
		}
	}()
	t.Cleanup(func() {
		_ = n.cmd.Process.Kill()
		<-n.exited
		if t.Failed() {
			t.Logf("output of %v:\n%s", argv, n.output())
		}
	})
	select {
	case base := <-addrCh:
		n.base = base
		n.addr = strings.TrimPrefix(strings.TrimPrefix(base, "https://"), "http://")
	case <-n.exited:
	case <-time.After(2 * time.Minute):
		t.Fatalf("%v: no address announced within 2 minutes", argv)
	}
	return n
}

func (n *faultNode) output() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.out, "\n")
}

// exitCode waits for the process to end and returns its exit code.
func (n *faultNode) exitCode(within time.Duration) int {
	n.t.Helper()
	select {
	case <-n.exited:
	case <-time.After(within):
		n.t.Fatalf("still running after %s", within)
	}
	if n.err == nil {
		return 0
	}
	if ee, ok := n.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	n.t.Fatalf("wait: %v", n.err)
	return -1
}

// stop sends SIGINT (Ctrl-C) and waits for a clean exit.
func (n *faultNode) stop() {
	n.t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGINT); err != nil {
		n.t.Fatal(err)
	}
	if code := n.exitCode(time.Minute); code != 0 {
		n.t.Fatalf("exit code %d after Ctrl-C", code)
	}
}

// call makes one request; body "" sends none.
func (n *faultNode) call(method, path, body string) (int, []byte) {
	n.t.Helper()
	req, err := http.NewRequest(method, n.base+path, strings.NewReader(body))
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if u, p, ok := strings.Cut(n.user, ":"); ok {
		req.SetBasicAuth(u, p)
	}
	resp, err := n.hc.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// faultRDD is GET /v1/rdds/{name}.
type faultRDD struct {
	Name          string `json:"name"`
	Session       int64  `json:"session"`
	State         string `json:"state"`
	LastError     string `json:"last_error"`
	NextAttemptAt int64  `json:"next_attempt_at"`
}

func (n *faultNode) rdd(name string) faultRDD {
	n.t.Helper()
	st, b := n.call("GET", "/v1/rdds/"+name, "")
	if st != http.StatusOK {
		n.t.Fatalf("GET /v1/rdds/%s: %d %s", name, st, b)
	}
	var r faultRDD
	if err := json.Unmarshal(b, &r); err != nil {
		n.t.Fatal(err)
	}
	return r
}

// sessionIDs lists GET /sessions' ids.
func (n *faultNode) sessionIDs() []int64 {
	n.t.Helper()
	st, b := n.call("GET", "/sessions?size=100000", "")
	if st != http.StatusOK {
		n.t.Fatalf("GET /sessions: %d %s", st, b)
	}
	var l struct {
		Sessions []struct {
			ID int64 `json:"id"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal(b, &l); err != nil {
		n.t.Fatal(err)
	}
	ids := make([]int64, len(l.Sessions))
	for i, s := range l.Sessions {
		ids[i] = s.ID
	}
	return ids
}

// metric reads one unlabelled sample from /metrics.
func (n *faultNode) metric(name string) float64 {
	n.t.Helper()
	st, b := n.call("GET", "/metrics", "")
	if st != http.StatusOK {
		n.t.Fatalf("GET /metrics: %d", st)
	}
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		n.t.Fatalf("no %s in /metrics", name)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// waitFor polls cond every 500 ms until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitValue waits until GET key of rdd answers want.
func waitValue(t *testing.T, n *faultNode, rdd, key, want string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		st, b := n.call("GET", "/v1/rdds/"+rdd+"/keys/"+key, "")
		if st == http.StatusOK && strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			_, r := n.call("GET", "/v1/rdds/"+rdd, "")
			t.Fatalf("%s/%s is not %s within 3 minutes: last answer %d %s; the rdd: %s", rdd, key, want, st, b, r)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// noPySpark makes a Python that lacks pyspark: a bare venv of the
// system's python3.
func noPySpark(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "nopyspark")
	if out, err := exec.Command("python3", "-m", "venv", "--without-pip", dir).CombinedOutput(); err != nil {
		t.Fatalf("python3 -m venv: %v\n%s", err, out)
	}
	py := filepath.Join(dir, "bin", "python")
	if exec.Command(py, "-c", "import pyspark").Run() == nil {
		t.Fatal("the bare venv imports pyspark")
	}
	return py
}

// seed runs a node on the real Python, makes a durable RDD with one key
// and stops it with Ctrl-C, as `make run` and a first user would.
func seed(t *testing.T, bin, dir string, python string) {
	t.Helper()
	n := startNode(t, dir, nodeEnv(), bin, "server", "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
		"--python", python, "--data-dir", "data", "--spark-master", "local[1]", "--log-level", "warn")
	if n.base == "" {
		t.Fatalf("the seeding node did not start:\n%s", n.output())
	}
	if st, b := n.call("POST", "/v1/rdds", `{"name":"states"}`); st != http.StatusCreated {
		t.Fatalf("create: %d %s", st, b)
	}
	if st, b := n.call("PUT", "/v1/rdds/states/keys/ca", `"California"`); st != http.StatusNoContent && st != http.StatusOK {
		t.Fatalf("set: %d %s", st, b)
	}
	n.stop()
}

// sessionDirs counts DATA-DIR/sessions/<id> directories.
func sessionDirs(t *testing.T, dataDir string) int {
	ents, err := os.ReadDir(filepath.Join(dataDir, "sessions"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return len(ents)
}

// TestFaultReadmeSecureStart pastes the README's secure start into a
// fresh checkout after `make run` (bin/srdd, .venv and a data dir holding
// a durable RDD), as a script, and expects the durable RDD back with its
// data: the node must find .venv/bin/python without --python.
func TestFaultReadmeSecureStart(t *testing.T) {
	python := testutil.Python(t)
	venv := filepath.Dir(filepath.Dir(python))
	if _, err := os.Stat(filepath.Join(venv, "pyvenv.cfg")); err != nil {
		t.Skipf("the test Python %s is not a venv's", python)
	}
	built := buildSrdd(t)
	clone := t.TempDir()
	if err := os.MkdirAll(filepath.Join(clone, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", built, filepath.Join(clone, "bin", "srdd")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if err := os.Symlink(venv, filepath.Join(clone, ".venv")); err != nil {
		t.Fatal(err)
	}
	// `make run`: bin/srdd server --python .venv/bin/python --data-dir data.
	seed(t, "bin/srdd", clone, ".venv/bin/python")

	cmds := readmeSecureStart(t)
	script := strings.Join(cmds[:len(cmds)-1], "\n") + "\n"
	if out, err := runScript(clone, script); err != nil {
		t.Fatalf("the README's first commands: %v\n%s", err, out)
	}
	// The server line, verbatim but for the address: tests bind
	// 127.0.0.1, port 0.
	server := cmds[len(cmds)-1]
	if !strings.Contains(server, "--http-addr 0.0.0.0:8998") {
		t.Fatalf("the README's server line changed: %s", server)
	}
	server = strings.Replace(server, "--http-addr 0.0.0.0:8998", "--http-addr 127.0.0.1:0 --raft-addr 127.0.0.1:0", 1)
	n := startNode(t, clone, nodeEnv(), "bash", "-c", "exec "+server)
	if n.base == "" {
		t.Fatalf("the README's secure start did not serve (exit %d):\n%s", n.exitCode(time.Second), n.output())
	}
	pem, err := os.ReadFile(filepath.Join(clone, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	n.hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	n.user = "ana:s3cret"
	waitValue(t, n, "states", "ca", "California")
	if r := n.rdd("states"); r.State != "ready" {
		t.Fatalf("states is %q after its key answered", r.State)
	}
	if ids := n.sessionIDs(); len(ids) > 5 {
		t.Fatalf("%d session records after one restart: %v", len(ids), ids)
	}
	n.stop()
}

// readmeSecureStart returns the README's "secure start" commands, one
// string each (continuation lines joined).
func readmeSecureStart(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "A secure start, in three commands")
	if !ok {
		t.Fatal("README.md has no secure start")
	}
	_, rest, _ = strings.Cut(rest, "```sh\n")
	block, _, _ := strings.Cut(rest, "```")
	var cmds []string
	cur := ""
	for _, line := range strings.Split(block, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		cmds = append(cmds, cur+line)
		cur = ""
	}
	if len(cmds) != 3 || !strings.HasPrefix(cmds[2], "bin/srdd server") {
		t.Fatalf("the README's secure start is not three commands ending in bin/srdd server: %q", cmds)
	}
	return cmds
}

func runScript(dir, script string) (string, error) {
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir, cmd.Env = dir, nodeEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestFaultRestartWithoutPySpark restarts a node holding a durable RDD
// with a Python that lacks pyspark: the preflight refuses it (exit 2,
// naming pyspark and the fix); past the preflight (--skip-preflight) the
// RDD shows recovering with the cause and the next try, the tries back
// off, the session records stay bounded; and a restart on the right
// Python brings the data back.
func TestFaultRestartWithoutPySpark(t *testing.T) {
	python := testutil.Python(t)
	bin := buildSrdd(t)
	dir := t.TempDir()
	seed(t, bin, dir, python)
	bad := noPySpark(t)
	args := []string{bin, "server", "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
		"--python", bad, "--data-dir", "data", "--spark-master", "local[1]", "--log-level", "warn"}

	n := startNode(t, dir, nodeEnv(), args...)
	if n.base != "" {
		t.Fatal("a node whose --python lacks pyspark served")
	}
	if code := n.exitCode(30 * time.Second); code != 2 {
		t.Fatalf("exit code %d, want 2:\n%s", code, n.output())
	}
	out := n.output()
	for _, want := range []string{"pyspark", "make venv", "--python .venv/bin/python"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the refusal does not say %q:\n%s", want, out)
		}
	}

	n = startNode(t, dir, nodeEnv(), append(args, "--skip-preflight", "--max-dead-sessions", "3")...)
	if n.base == "" {
		t.Fatalf("did not serve with --skip-preflight:\n%s", n.output())
	}
	began := time.Now()
	var r faultRDD
	waitFor(t, 20*time.Second, "states shows its last error", func() bool {
		r = n.rdd("states")
		return r.LastError != ""
	})
	if r.State != "recovering" || !strings.Contains(r.LastError, "pyspark") {
		t.Fatalf("states = %+v; want recovering, with a last_error naming pyspark", r)
	}
	time.Sleep(time.Until(began.Add(30 * time.Second)))
	ids := n.sessionIDs()
	if len(ids) > 5 {
		t.Fatalf("%d session records after 30 s (want at most 5): %v", len(ids), ids)
	}
	if d := sessionDirs(t, filepath.Join(dir, "data")); d > 5 {
		t.Fatalf("%d session directories after 30 s (want at most 5)", d)
	}
	// 1 s doubling from the first failure: tries at about 0, 1, 3, 7, 15
	// and (with jitter) 25-37 s.
	if f := n.metric("srdd_session_start_failures_total"); f < 3 || f > 7 {
		t.Fatalf("srdd_session_start_failures_total = %v after 30 s; want 3..7 (backing off)", f)
	}
	waitFor(t, 20*time.Second, "states shows when it is tried next", func() bool {
		r = n.rdd("states")
		return r.State == "recovering" && r.NextAttemptAt > time.Now().UnixMilli()
	})
	ls, err := exec.Command(bin, "--addr", n.addr, "rdd", "ls").CombinedOutput()
	if err != nil || !strings.Contains(string(ls), "recovering") || !strings.Contains(string(ls), "next try in") || !strings.Contains(string(ls), "pyspark") {
		t.Fatalf("srdd rdd ls = %v\n%s", err, ls)
	}
	n.stop()

	// The right Python: nothing was lost, and ids were not reused.
	n = startNode(t, dir, nodeEnv(), bin, "server", "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
		"--python", python, "--data-dir", "data", "--spark-master", "local[1]", "--log-level", "warn")
	waitValue(t, n, "states", "ca", "California")
	maxID := int64(-1)
	for _, id := range ids {
		maxID = max(maxID, id)
	}
	if r := n.rdd("states"); r.Session <= maxID {
		t.Fatalf("states is in session %d; ids up to %d were used before", r.Session, maxID)
	}
	n.stop()
}

// TestFaultDeadSessionsBounded: sessions that fail to start are kept up
// to --max-dead-sessions, the oldest go first, and ids are not reused.
func TestFaultDeadSessionsBounded(t *testing.T) {
	bin := buildSrdd(t)
	dir := t.TempDir()
	n := startNode(t, dir, nodeEnv(), bin, "server", "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
		"--python", noPySpark(t), "--skip-preflight", "--data-dir", "data", "--max-dead-sessions", "3", "--log-level", "warn")
	if n.base == "" {
		t.Fatalf("did not serve:\n%s", n.output())
	}
	for i := 0; i < 8; i++ {
		if st, b := n.call("POST", "/sessions", `{"kind":"pyspark"}`); st != http.StatusCreated {
			t.Fatalf("POST /sessions: %d %s", st, b)
		}
		time.Sleep(300 * time.Millisecond)
	}
	var ids []int64
	waitFor(t, 40*time.Second, "at most 3 ended sessions kept", func() bool {
		ids = n.sessionIDs()
		return len(ids) <= 3 && sessionDirs(t, filepath.Join(dir, "data")) <= 3
	})
	for _, id := range ids {
		if id < 5 {
			t.Fatalf("kept %v: the oldest must go first", ids)
		}
	}
	st, b := n.call("POST", "/sessions", `{"kind":"pyspark"}`)
	var s struct {
		ID int64 `json:"id"`
	}
	if st != http.StatusCreated || json.Unmarshal(b, &s) != nil || s.ID != 8 {
		t.Fatalf("the next session: %d %s; want id 8 (ids are never reused)", st, b)
	}
	n.stop()
}

// TestFaultShutdownTraceback: Ctrl-C while an interpreter is printing a
// traceback logs the whole traceback or nothing, never a bare first line,
// and does not wait for the interpreter's start timeout.
func TestFaultShutdownTraceback(t *testing.T) {
	bin := buildSrdd(t)
	dir := t.TempDir()
	fake := filepath.Join(dir, "python")
	script := "#!/bin/sh\necho 'Traceback (most recent call last):' >&2\nexec sleep 600\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, dir, nodeEnv(), bin, "server", "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
		"--python", fake, "--skip-preflight", "--data-dir", "data", "--log-level", "info")
	if n.base == "" {
		t.Fatalf("did not serve:\n%s", n.output())
	}
	if st, b := n.call("POST", "/sessions", `{"kind":"pyspark"}`); st != http.StatusCreated {
		t.Fatalf("POST /sessions: %d %s", st, b)
	}
	time.Sleep(2 * time.Second) // the fake printed its first line
	began := time.Now()
	n.stop()
	if took := time.Since(began); took > 20*time.Second {
		t.Fatalf("Ctrl-C took %s", took)
	}
	lines := strings.Split(n.output(), "\n")
	for i, l := range lines {
		if strings.Contains(l, "Traceback (most recent call last):") &&
			(i+1 >= len(lines) || !strings.Contains(lines[i+1], `File "`)) {
			t.Fatalf("a bare traceback line in the log:\n%s", n.output())
		}
	}
}

// TestFaultDoctorAndPreflight: srdd doctor prints one line per check and
// exits 2 on a failure; srdd server refuses a missing Java or an unusable
// data dir with exit 2, naming it and the fix.
func TestFaultDoctorAndPreflight(t *testing.T) {
	python := testutil.Python(t)
	bin := buildSrdd(t)
	dir := t.TempDir()
	doctor := func(env []string, args ...string) (string, int) {
		cmd := exec.Command(bin, append([]string{"doctor", "--data-dir", filepath.Join(dir, "data")}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	out, code := doctor(nodeEnv(), "--python", python)
	if code != 0 || len(regexp.MustCompile(`(?m)^ok +\S`).FindAllString(out, -1)) != 5 || strings.Contains(out, "FAIL") {
		t.Fatalf("doctor on a good set-up: exit %d\n%s", code, out)
	}
	out, code = doctor(nodeEnv(), "--python", noPySpark(t))
	if code != 2 || !regexp.MustCompile(`(?m)^FAIL +python .*pyspark.*make venv`).MatchString(out) {
		t.Fatalf("doctor without pyspark: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Fatal("srdd doctor created the data dir")
	}

	server := func(env []string, args ...string) (string, int) {
		n := startNode(t, dir, env, append([]string{bin, "server", "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
			"--python", python}, args...)...)
		if n.base != "" {
			t.Fatalf("served: %v", args)
		}
		return n.output(), n.exitCode(30 * time.Second)
	}
	out, code = server(nodeEnv("JAVA_HOME=/nonexistent/jdk"), "--data-dir", filepath.Join(dir, "data"))
	if code != 2 || !strings.Contains(out, "java") || !strings.Contains(out, "openjdk-17-jre-headless") {
		t.Fatalf("no Java: exit %d\n%s", code, out)
	}
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = server(nodeEnv(), "--data-dir", file)
	if code != 2 || !strings.Contains(out, "data-dir") || !strings.Contains(out, "not a directory") {
		t.Fatalf("a file as data dir: exit %d\n%s", code, out)
	}
	out, code = server(nodeEnv(), "--data-dir", filepath.Join(dir, "data2"), "--file-root", filepath.Join(file, "files"))
	if code != 2 || !strings.Contains(out, "file-root") {
		t.Fatalf("a file root under a file: exit %d\n%s", code, out)
	}
}
