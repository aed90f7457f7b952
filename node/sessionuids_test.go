package node

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/srdd/srdd/internal/testutil"
)

// uidTestRange is the --interpreter-uids range of TestSessionUIDs: uids
// no account on a test machine has.
const uidTestFirst, uidTestLast = 61000, 61015

// uidAccounts gives each uid of first..last an account (srdd-UID, group
// srdd-uids with gid first) in /etc/passwd and /etc/group for the test,
// as an operator does once (README, "Securing srdd"), and removes them
// afterwards. Uids that already have an account are left alone.
func uidAccounts(t *testing.T, first, last uint32) {
	t.Helper()
	add := func(file string, lines func(have string) []string) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		added := lines(string(b))
		if len(added) == 0 {
			return
		}
		f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			_, _ = f.WriteString("\n")
		}
		_, err = f.WriteString(strings.Join(added, "\n") + "\n")
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cur, err := os.ReadFile(file)
			if err != nil {
				return
			}
			drop := map[string]bool{}
			for _, l := range added {
				drop[l] = true
			}
			var keep []string
			for _, l := range strings.SplitAfter(string(cur), "\n") {
				if !drop[strings.TrimSuffix(l, "\n")] {
					keep = append(keep, l)
				}
			}
			_ = os.WriteFile(file, []byte(strings.Join(keep, "")), 0o644)
		})
	}
	has := func(have, field string, idx int) bool {
		for _, l := range strings.Split(have, "\n") {
			if f := strings.Split(l, ":"); len(f) > idx && f[idx] == field {
				return true
			}
		}
		return false
	}
	add("/etc/group", func(have string) []string {
		if has(have, strconv.Itoa(int(first)), 2) {
			return nil
		}
		return []string{fmt.Sprintf("srdd-uids:x:%d:", first)}
	})
	add("/etc/passwd", func(have string) []string {
		var out []string
		for u := first; u <= last; u++ {
			if !has(have, strconv.Itoa(int(u)), 2) {
				out = append(out, fmt.Sprintf("srdd-%d:x:%d:%d::/nonexistent:/usr/sbin/nologin", u, u, first))
			}
		}
		return out
	})
}

// interpreterPid finds the process of session id's interpreter (a child
// of this process whose command line names srdd_interpreter and
// --session-id id) and its uid.
// uidTestDataDir is the dir of TestSessionUIDs' node (interpreterPid
// picks its interpreters by their work dir under it).
var uidTestDataDir atomic.Value

func interpreterPid(t *testing.T, id int64) (pid int, uid uint32) {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	want := []byte("\x00--session-id\x00" + strconv.FormatInt(id, 10) + "\x00")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		if err != nil || !bytes.Contains(cmd, []byte("srdd_interpreter")) || !bytes.Contains(cmd, want) {
			continue
		}
		// A child of this process (the node runs in it): other tests on
		// the machine run interpreters too; and one of this test's node
		// (its work dir is under the node's data dir), not of a node
		// another test of this package left running with the same ids.
		cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", p))
		if u, ok := procUID(p); ok && procPPid(p) == os.Getpid() && strings.HasPrefix(cwd, uidTestDataDir.Load().(string)) {
			return p, u
		}
	}
	t.Fatalf("no interpreter process of session %d", id)
	return 0, 0
}

// mappedAddr returns the start of a readable mapping of pid (read as
// root, which alice's code cannot do).
func mappedAddr(t *testing.T, pid int) uint64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && strings.HasPrefix(fields[1], "r") {
			start, _, _ := strings.Cut(fields[0], "-")
			a, err := strconv.ParseUint(start, 16, 64)
			if err == nil {
				return a
			}
		}
	}
	t.Fatalf("no readable mapping in /proc/%d/maps", pid)
	return 0
}

func fileOwner(t *testing.T, path string) (uint32, os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Uid, fi.Mode().Perm()
}

// TestSessionUIDs (issue 25, item 1; docs/ARCHITECTURE.md, "Sessions
// hold no secret"): with --interpreter-uids each live session runs as a
// uid of its own, and the kernel keeps alice's session code out of bob's:
// it can neither list bob's checkpoint dir nor read it with Spark, read
// bob's interpreter memory, environment or token pipe, signal it, or
// write his checkpoint files; bob's checkpoints are his uid's, 0700, and
// a rebuild in another session gets them handed over. With one shared
// --interpreter-user every one of these attacks works. One node, real
// PySpark, three JVMs (two sessions and the rebuild).
func TestSessionUIDs(t *testing.T) {
	spark(t) // the uids of real interpreters and JVMs are the point
	if os.Geteuid() != 0 {
		t.Skip("--interpreter-uids needs the node to run as root; CI runs as root")
	}
	uidAccounts(t, uidTestFirst, uidTestLast)
	python, dir := otherUserSetup(t, uidTestFirst, uidTestFirst, "srdd-uids-")
	users := filepath.Join(dir, "users.json")
	roles := map[string][]string{}
	for name, glob := range map[string]string{"alice": "a*", "bob": "b*"} {
		roles[name] = []string{"code", "create:" + glob, "read:" + glob, "write:" + glob}
	}
	creds := writeUsers(t, users, roles, nil)
	cfg := testConfig(t, filepath.Join(dir, "data"))
	cfg.Python, cfg.AuthFile = python, users
	cfg.InterpreterUIDs = fmt.Sprintf("%d-%d", uidTestFirst, uidTestLast)
	uidTestDataDir.Store(dir)
	_, base := startNode(t, cfg)
	alice, bob := creds["alice"], creds["bob"]

	sa := newSession(t, base, alice)
	sb := newSession(t, base, bob)
	_, uidA := interpreterPid(t, sa)
	pidB, uidB := interpreterPid(t, sb)
	inRange := func(u uint32) bool { return u >= uidTestFirst && u <= uidTestLast }
	if !inRange(uidA) || !inRange(uidB) || uidA == uidB {
		t.Errorf("interpreters run as uids %d (alice) and %d (bob), want two different uids of %s", uidA, uidB, cfg.InterpreterUIDs)
	}
	// A local driver's RPC port (its block manager serves cached
	// partitions over 127.0.0.1) asks for a secret.
	if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pidB)); !bytes.Contains(cmd, []byte("spark.authenticate=true")) {
		t.Errorf("bob's interpreter runs without spark.authenticate: %q", cmd)
	}
	workB := filepath.Join(dir, "data", "work", fmt.Sprintf("session-%d", sb))
	if u, mode := fileOwner(t, workB); u != uidB || mode != 0o700 {
		t.Errorf("bob's work dir is uid %d mode %v, want %d 0700", u, mode, uidB)
	}

	// Bob's durable RDD, with a checkpoint on disk.
	if st, _, b := authDo("POST", base+"/v1/rdds", fmt.Sprintf(`{"name":"bstates","session":%d,"mode":"durable"}`, sb), bob); st != 201 {
		t.Fatalf("create bstates: %d %s", st, b)
	}
	if out := run2(t, base, bob, sb, "bstates.set('k', 'bob-secret'); bstates.get('k')"); !strings.Contains(out, "bob-secret") {
		t.Fatalf("bob's durable write: %s", out)
	}
	st, _, b := authDo("POST", base+"/v1/rdds/bstates/checkpoint", `{}`, bob)
	if st != 200 {
		t.Fatalf("checkpoint bstates: %d %s", st, b)
	}
	var ck struct {
		Path string `json:"path"`
	}
	if err := json.Unmarshal(b, &ck); err != nil || ck.Path == "" {
		t.Fatalf("checkpoint answer %s: %v", b, err)
	}
	ckPath := strings.TrimPrefix(ck.Path, "file://")
	ckDir := filepath.Dir(ckPath)
	if u, mode := fileOwner(t, ckDir); u != uidB || mode != 0o700 {
		t.Errorf("bob's checkpoint dir %s is uid %d mode %v, want bob's session uid %d, 0700", ckDir, u, mode, uidB)
	}
	if u, mode := fileOwner(t, filepath.Dir(ckDir)); u != 0 || mode != 0o711 {
		t.Errorf("checkpoint root is uid %d mode %v, want root's, 0711 (no listing)", u, mode)
	}

	// Bob's own code holds its capability; with it the test reads bob's
	// RDD, as alice would if she could get it.
	bobProbe := runProbe(t, base, bob, sb, nil)
	if bobProbe.Token == "" || bobProbe.UID != int(uidB) {
		t.Fatalf("bob's session: uid %d, token %t", bobProbe.UID, bobProbe.Token != "")
	}
	if st, _, b := authDo("GET", base+"/v1/rdds/bstates/keys/k", "", "Bearer "+bobProbe.Token); st != 200 {
		t.Fatalf("bob's session token on bstates: %d %s", st, b)
	}

	// Alice's session code attacks bob's session.
	addr := mappedAddr(t, pidB)
	attack := fmt.Sprintf(`
import os, json, signal
PID, ADDR, CKDIR, CKPATH, WORK = %d, %d, %q, %q, %q
r = {}
def tr(name, f):
    try:
        r[name] = 'OK:' + repr(f())[:200]
    except BaseException as e:
        r[name] = 'ERR:' + type(e).__name__ + ': ' + str(e)[:300]
def mem():
    with open('/proc/%%d/mem' %% PID, 'rb') as f:
        f.seek(ADDR)
        return f.read(64)
def rd(p):
    with open(p, 'rb') as f:
        return f.read(4096)
tr('list_checkpoints', lambda: os.listdir(CKDIR))
tr('list_checkpoint_root', lambda: os.listdir(os.path.dirname(CKDIR)))
tr('read_parquet', lambda: spark.read.parquet(CKPATH).collect())
tr('write_checkpoint', lambda: open(os.path.join(CKDIR, 'x'), 'wb').write(b'x'))
tr('mem', mem)
tr('environ', lambda: rd('/proc/%%d/environ' %% PID))
tr('token_pipe', lambda: rd('/proc/%%d/fd/3' %% PID))
tr('signal', lambda: os.kill(PID, signal.SIGTERM))
tr('work_dir', lambda: os.listdir(WORK))
r['uid'] = os.getuid()
print(json.dumps(r))
`, pidB, addr, ckDir, ckPath, workB)
	report := outputText(t, []byte(run2(t, base, alice, sa, attack)), "alice's attack")
	var got map[string]any
	if err := json.Unmarshal([]byte(report), &got); err != nil {
		t.Fatalf("alice's report %q: %v", report, err)
	}
	t.Logf("alice's session code against bob's session: %s", report)
	if u, _ := got["uid"].(float64); uint32(u) != uidA {
		t.Errorf("alice's code runs as uid %v, want %d", got["uid"], uidA)
	}
	for _, k := range []string{"list_checkpoints", "list_checkpoint_root", "write_checkpoint", "mem", "environ", "token_pipe", "signal", "work_dir"} {
		v, _ := got[k].(string)
		if !strings.HasPrefix(v, "ERR:PermissionError") {
			t.Errorf("alice's session code, %s on bob's session: %.200s; want a PermissionError", k, v)
		}
	}
	// Spark reports the refused read in its own words (a Java exception).
	if v, _ := got["read_parquet"].(string); !strings.HasPrefix(v, "ERR:") || strings.Contains(v, "bob-secret") {
		t.Errorf("alice's session code read bob's checkpoint with Spark: %.300s", v)
	}
	if _, err := os.Stat(filepath.Join(ckDir, "x")); err == nil {
		t.Error("alice wrote into bob's checkpoint dir")
	}
	if err := syscall.Kill(pidB, 0); err != nil {
		t.Fatalf("bob's interpreter is gone after alice's signal: %v", err)
	}

	// A batch driver is user code too: it gets a uid of its own, neither
	// alice's nor bob's while their sessions live, and cannot list bob's
	// checkpoints.
	probe := filepath.Join(dir, "data", "files", "uidprobe.py")
	code := fmt.Sprintf("import os\nprint('UID', os.getuid())\ntry:\n    os.listdir(%q)\n    print('LISTED')\nexcept PermissionError:\n    print('DENIED')\n", ckDir)
	if err := os.WriteFile(probe, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	state, logBody := runBatchAs(t, base, probe, alice)
	if state != "success" {
		t.Fatalf("batch ended %s: %s", state, logBody)
	}
	var uidBatch uint32
	for _, l := range strings.Split(string(logBody), `"`) {
		if v, ok := strings.CutPrefix(l, "UID "); ok {
			u, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			uidBatch = uint32(u)
		}
	}
	if !inRange(uidBatch) || uidBatch == uidA || uidBatch == uidB {
		t.Errorf("the batch driver ran as uid %d, want one of %s that neither live session has (%d, %d): %s", uidBatch, cfg.InterpreterUIDs, uidA, uidB, logBody)
	}
	if !strings.Contains(string(logBody), "DENIED") || strings.Contains(string(logBody), "LISTED") {
		t.Errorf("the batch driver listed bob's checkpoint dir: %s", logBody)
	}

	// Bob's session ends: its token dies with it, its uid's processes
	// are gone, and the RDD is rebuilt in the node's own session, which
	// gets the checkpoint dir handed over.
	if st, _, b := authDo("DELETE", fmt.Sprintf("%s/sessions/%d", base, sb), "", bob); st != 200 {
		t.Fatalf("delete bob's session: %d %s", st, b)
	}
	if st, _, _ := authDo("GET", base+"/v1/rdds/bstates/keys/k", "", "Bearer "+bobProbe.Token); st == 200 {
		t.Error("bob's session token still reads bstates after the session ended")
	}
	err := testutil.WaitFor(4*time.Minute, func() (bool, error) {
		st, _, b := authDo("GET", base+"/v1/rdds/bstates/keys/k", "", bob)
		return st == 200 && strings.Contains(string(b), "bob-secret"), nil
	})
	if err != nil {
		t.Fatalf("bstates not rebuilt after bob's session ended: %v", err)
	}
	if u, mode := fileOwner(t, ckDir); !inRange(u) || u == uidA || u == uidB || mode != 0o700 {
		t.Errorf("after the rebuild the checkpoint dir is uid %d mode %v, want the new owner's uid, 0700", u, mode)
	}
	err = testutil.WaitFor(time.Minute, func() (bool, error) { return len(uidPidsForTest(uidB)) == 0, nil })
	if err != nil {
		t.Errorf("processes still run as bob's former uid %d: %v", uidB, uidPidsForTest(uidB))
	}
}

// procUID is the real uid of process pid (from its status: the owner
// of /proc/PID is root for a process that is not dumpable).
func procUID(pid int) (uint32, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				u, err := strconv.ParseUint(f[0], 10, 32)
				return uint32(u), err == nil
			}
		}
	}
	return 0, false
}

// procPPid is the parent of process pid (0 if unknown).
func procPPid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "PPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(rest))
			return n
		}
	}
	return 0
}

// uidPidsForTest lists the processes running as uid.
func uidPidsForTest(uid uint32) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if u, ok := procUID(p); ok && u == uid {
			pids = append(pids, p)
		}
	}
	return pids
}

// TestSessionUIDsRunOut: with every uid of --interpreter-uids held by a
// live session, a new session is a 429 limit_reached that records
// nothing; the uid goes back once that session's interpreter is gone.
func TestSessionUIDsRunOut(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("--interpreter-uids needs the node to run as root; CI runs as root")
	}
	const only = 61020
	uidAccounts(t, only, only)
	python, dir := otherUserSetup(t, only, only, "srdd-uids-out-")
	users, creds := secretUsers(t, dir)
	cfg := testConfig(t, filepath.Join(dir, "data"))
	cfg.Python, cfg.AuthFile, cfg.MemoryOnly = python, users, true
	cfg.InterpreterUIDs = fmt.Sprintf("%d-%d", only, only)
	_, base := startNode(t, cfg)
	ana := creds["ana"]
	var first struct {
		ID int64 `json:"id"`
	}
	postCreated(t, base+"/sessions", `{"kind":"pyspark"}`, ana, &first)
	total := func() int {
		_, _, b := authDo("GET", base+"/sessions", "", ana)
		var l struct {
			Total int `json:"total"`
		}
		_ = json.Unmarshal(b, &l)
		return l.Total
	}
	before := total()
	st, _, b := authDo("POST", base+"/sessions", `{"kind":"pyspark"}`, ana)
	if st != 429 || !strings.Contains(string(b), "limit_reached") || !strings.Contains(string(b), "--interpreter-uids") {
		t.Fatalf("a session with no uid free: %d %s, want 429 limit_reached naming --interpreter-uids", st, b)
	}
	if after := total(); after != before || before != 1 {
		t.Errorf("sessions listed: %d before a refused create, %d after (want 1 and 1): it recorded something", before, after)
	}
	if st, _, b := authDo("DELETE", fmt.Sprintf("%s/sessions/%d", base, first.ID), "", ana); st != 200 {
		t.Fatalf("delete: %d %s", st, b)
	}
	var id int64 = -1
	err := testutil.WaitFor(2*time.Minute, func() (bool, error) {
		st, _, b := authDo("POST", base+"/sessions", `{"kind":"pyspark"}`, ana)
		if st == 201 {
			var s struct {
				ID int64 `json:"id"`
			}
			_ = json.Unmarshal(b, &s)
			id = s.ID
			return true, nil
		}
		if st != 429 {
			return false, fmt.Errorf("create after the uid went back: %d %s", st, b)
		}
		time.Sleep(200 * time.Millisecond)
		return false, nil
	})
	if err != nil {
		t.Fatalf("the uid never went back: %v", err)
	}
	authDo("DELETE", fmt.Sprintf("%s/sessions/%d", base, id), "", ana)
}
