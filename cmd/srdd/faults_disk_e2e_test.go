//go:build faults

// Fault tests of issue 22 part 4 (`make test-faults`): a full disk under
// the data dir or the checkpoint dir, on a real small filesystem (a tmpfs
// of a few MiB the test mounts; it needs root) under a write and read
// load checked with porcupine.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/srdd/srdd/internal/lincheck"
	"github.com/srdd/srdd/internal/testutil"
)

// mountTmpfs mounts a tmpfs of size MiB on a new directory and unmounts
// it when the test ends.
func mountTmpfs(t *testing.T, mib int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", mib), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a %d MiB tmpfs (the disk-full tests need root): %v %s", mib, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a file into dir until the filesystem is full (ENOSPC)
// and returns its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return path
		}
	}
}

// statusCounts counts answers by phase and kind ("put 507").
type statusCounts struct {
	mu     sync.Mutex
	phase  string
	counts map[string]map[string]int
	// firstOK is when a write first succeeded in each phase.
	firstOK map[string]time.Time
}

func newStatusCounts(phase string) *statusCounts {
	return &statusCounts{phase: phase, counts: map[string]map[string]int{}, firstOK: map[string]time.Time{}}
}

func (c *statusCounts) setPhase(p string) {
	c.mu.Lock()
	c.phase = p
	c.mu.Unlock()
}

// add counts one answer, to the phase that was current when the call
// began (began).
func (c *statusCounts) add(began, kind string, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts[began] == nil {
		c.counts[began] = map[string]int{}
	}
	c.counts[began][fmt.Sprintf("%s %d", kind, status)]++
	if kind == "put" && status/100 == 2 {
		if _, ok := c.firstOK[began]; !ok {
			c.firstOK[began] = time.Now()
		}
	}
}

func (c *statusCounts) current() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.phase
}

func (c *statusCounts) get(phase, kind string, status int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[phase][fmt.Sprintf("%s %d", kind, status)]
}

// others counts the answers of kind in phase whose status is not in ok.
func (c *statusCounts) others(phase, kind string, ok ...int) map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, n := range c.counts[phase] {
		kk, st, _ := strings.Cut(k, " ")
		s, _ := strconv.Atoi(st)
		if kk != kind {
			continue
		}
		good := false
		for _, o := range ok {
			good = good || s == o
		}
		if !good {
			out[k] = n
		}
	}
	return out
}

func (c *statusCounts) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var phases []string
	for p := range c.counts {
		phases = append(phases, p)
	}
	sort.Strings(phases)
	var b strings.Builder
	for _, p := range phases {
		var ks []string
		for k := range c.counts[p] {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		fmt.Fprintf(&b, "\n  %-8s", p)
		for _, k := range ks {
			fmt.Fprintf(&b, " %s: %d;", k, c.counts[p][k])
		}
	}
	return b.String()
}

// kvLoad runs writers and readers against one RDD and records every
// answer for porcupine (a write answered 507 or 4xx certainly did not
// happen and is left out; one with any other failure may have happened).
type kvLoad struct {
	n      *faultNode
	rdd    string
	keys   int
	hist   *lincheck.History
	counts *statusCounts
	testutil.Workers
}

func startKVLoad(n *faultNode, rdd string, keys, writers, readers int, counts *statusCounts) *kvLoad {
	return startKVLoadInto(lincheck.NewHistory(), n, rdd, keys, writers, readers, counts)
}

// startKVLoadInto is startKVLoad recording into hist (loads through
// several nodes share one history).
func startKVLoadInto(hist *lincheck.History, n *faultNode, rdd string, keys, writers, readers int, counts *statusCounts) *kvLoad {
	return startKVLoadTimeout(30*time.Second, hist, n, rdd, keys, writers, readers, counts)
}

// startKVLoadTimeout is startKVLoadInto whose clients give up on a call
// after timeout (status 0).
func startKVLoadTimeout(timeout time.Duration, hist *lincheck.History, n *faultNode, rdd string, keys, writers, readers int, counts *statusCounts) *kvLoad {
	l := &kvLoad{n: n, rdd: rdd, keys: keys, hist: hist, counts: counts}
	hc := &http.Client{Timeout: timeout}
	for w := 0; w < writers; w++ {
		client := int(loadClients.Add(1))
		l.Repeat(func(i int) {
			key := fmt.Sprintf("k%d", (client*7+i)%keys)
			val := fmt.Sprintf(`{"c":%d,"i":%d}`, client, i)
			phase := counts.current()
			call := l.hist.Now()
			st, code := l.do(hc, "PUT", key, val)
			counts.add(phase, "put", st)
			switch {
			case st/100 == 2:
				l.hist.Put(client, key, val, call, true)
			case st == http.StatusInsufficientStorage || (st >= 400 && st < 500) || (st == http.StatusServiceUnavailable && refusedCodes[code]):
				// Refused: it never happened.
			default:
				l.hist.Put(client, key, val, call, false)
			}
			time.Sleep(20 * time.Millisecond)
		})
	}
	for r := 0; r < readers; r++ {
		client := int(loadClients.Add(1))
		l.Repeat(func(i int) {
			phase := counts.current()
			l.get(hc, client, fmt.Sprintf("k%d", i%keys), phase)
			time.Sleep(20 * time.Millisecond)
		})
	}
	return l
}

// loadClients numbers the clients of every load, so that values written
// through different nodes differ.
var loadClients atomic.Int64

// get reads key once and records what it saw.
func (l *kvLoad) get(hc *http.Client, client int, key, phase string) {
	call := l.hist.Now()
	req, _ := http.NewRequest("GET", l.n.base+"/v1/rdds/"+l.rdd+"/keys/"+key, nil)
	resp, err := hc.Do(req)
	if err != nil {
		l.counts.add(phase, "get", 0)
		return
	}
	defer resp.Body.Close()
	var body struct {
		Value json.RawMessage `json:"value"`
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	derr := json.NewDecoder(resp.Body).Decode(&body)
	l.counts.add(phase, "get", resp.StatusCode)
	switch {
	case resp.StatusCode == http.StatusOK && derr == nil:
		l.hist.Get(client, key, string(body.Value), call)
	case resp.StatusCode == http.StatusNotFound && body.Error.Code == "key_not_found":
		l.hist.Get(client, key, "", call)
	}
}

// refusedCodes are the 503 codes of a write the server refused before
// it was logged (docs/ARCHITECTURE.md, "Clients: failover without double
// writes"): owner_unavailable (the forward never reached the owner),
// recovering and starting (refused before the log), moved.
var refusedCodes = map[string]bool{"owner_unavailable": true, "recovering": true, "starting": true, "moved": true}

// do sends one call; it answers the status (0: no answer) and the error
// code of an error body.
func (l *kvLoad) do(hc *http.Client, method, key, val string) (int, string) {
	req, _ := http.NewRequest(method, l.n.base+"/v1/rdds/"+l.rdd+"/keys/"+key, strings.NewReader(val))
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	var body struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body)
	return resp.StatusCode, body.Error.Code
}

// readAll reads every key once more (after the load, or a restart).
func (l *kvLoad) readAll(phase string) {
	hc := &http.Client{Timeout: 30 * time.Second}
	for k := 0; k < l.keys; k++ {
		l.get(hc, 2000, fmt.Sprintf("k%d", k), phase)
	}
}

func (l *kvLoad) check(t *testing.T) {
	t.Helper()
	res := l.hist.Check(time.Minute)
	if res != porcupine.Ok {
		logViolation(t, l.hist)
		t.Fatalf("the history of %d operations is not linearizable (%v): an acknowledged write was lost or a refused one applied", l.hist.Len(), res)
	}
	t.Logf("porcupine: %d operations, linearizable", l.hist.Len())
}

// logViolation logs the operations on the first key whose history alone
// is not linearizable, by call time.
func logViolation(t *testing.T, h *lincheck.History) {
	t.Helper()
	byKey := map[string][]porcupine.Operation{}
	for _, op := range h.Operations() {
		k := op.Input.(lincheck.Input).Key
		byKey[k] = append(byKey[k], op)
	}
	for k, ops := range byKey {
		if porcupine.CheckOperations(lincheck.Model, ops) {
			continue
		}
		sort.Slice(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
		var b strings.Builder
		for _, op := range ops {
			in := op.Input.(lincheck.Input)
			ret := "?"
			if op.Return != math.MaxInt64 {
				ret = time.Duration(op.Return).String()
			}
			if in.Put {
				fmt.Fprintf(&b, "\n  c%d put %s [%s, %s]", op.ClientId, in.Value, time.Duration(op.Call), ret)
			} else {
				fmt.Fprintf(&b, "\n  c%d get -> %s [%s, %s]", op.ClientId, op.Output.(lincheck.Output).Value, time.Duration(op.Call), ret)
			}
		}
		t.Logf("key %s is not linearizable; its operations:%s", k, b.String())
		return
	}
}

// readyz returns /readyz's status and body.
func readyz(n *faultNode) (int, string) {
	st, b := n.call("GET", "/readyz", "")
	return st, string(b)
}

// diskFaultNode starts a node for a disk-full test.
func diskFaultNode(t *testing.T, bin, dir string, extra ...string) *faultNode {
	t.Helper()
	n := startNode(t, dir, nodeEnv(), append([]string{bin, "server", "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
		"--python", testutil.Python(t), "--spark-master", "local[1]", "--log-level", "warn"}, extra...)...)
	if n.base == "" {
		t.Fatalf("the node did not serve:\n%s", n.output())
	}
	return n
}

// runDiskFull is the scenario of both disk-full tests: a load on a
// durable RDD; the filesystem at full fills up; every write is refused
// with 507, reads go on, /readyz says disk_space; the space returns and
// writes pass again by themselves; a restart finds every acknowledged
// write. onFull, if set, runs as the disk is full and returns what runs
// 10 s later, before the space returns. It returns the restarted node.
func runDiskFull(t *testing.T, full string, onFull func(*faultNode) func(), args ...string) *faultNode {
	bin := buildSrdd(t)
	dir := t.TempDir()
	n := diskFaultNode(t, bin, dir, args...)
	if st, b := n.call("POST", "/v1/rdds", `{"name":"kv"}`); st != http.StatusCreated {
		t.Fatalf("create: %d %s", st, b)
	}
	waitFor(t, 3*time.Minute, "kv ready", func() bool { return n.rdd("kv").State == "ready" })

	counts := newStatusCounts("1-before")
	load := startKVLoad(n, "kv", 8, 3, 2, counts)
	time.Sleep(5 * time.Second)

	counts.setPhase("2-filling") // while the disk fills, and the guard looks again
	filler := fillDisk(t, full)
	time.Sleep(time.Second)
	counts.setPhase("3-full")
	if st, body := readyz(n); st != http.StatusServiceUnavailable || !strings.Contains(body, "disk_space") {
		t.Errorf("/readyz on a full disk: %d %s", st, body)
	}
	st, b := n.call("PUT", "/v1/rdds/kv/keys/probe", `"x"`)
	if st != http.StatusInsufficientStorage || !strings.Contains(string(b), `"insufficient_storage"`) || !strings.Contains(string(b), full) {
		t.Errorf("a write on a full disk: %d %s; want 507 insufficient_storage naming %s", st, b, full)
	}
	var afterFull func()
	if onFull != nil {
		afterFull = onFull(n)
	}
	time.Sleep(10 * time.Second)
	if afterFull != nil {
		afterFull()
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	counts.setPhase("4-freed")
	waitFor(t, 30*time.Second, "a write passes once space returns", func() bool {
		counts.mu.Lock()
		defer counts.mu.Unlock()
		_, ok := counts.firstOK["4-freed"]
		return ok
	})
	counts.mu.Lock()
	recovered := counts.firstOK["4-freed"].Sub(freed)
	counts.mu.Unlock()
	time.Sleep(3 * time.Second)
	load.Halt()
	if st, body := readyz(n); st != http.StatusOK {
		t.Errorf("/readyz after space returned: %d %s", st, body)
	}
	load.readAll("5-after")

	// Nothing acknowledged is lost across a restart either.
	n.stop()
	n = diskFaultNode(t, bin, dir, args...)
	waitFor(t, 3*time.Minute, "kv ready after the restart", func() bool { return n.rdd("kv").State == "ready" })
	load.n = n
	load.readAll("6-restart")
	t.Logf("answers by phase (kind status: count):%s", counts)
	t.Logf("first acknowledged write %s after the space returned", recovered.Round(time.Millisecond))

	if c := counts.get("3-full", "put", http.StatusInsufficientStorage); c == 0 {
		t.Errorf("no write answered 507 on the full disk")
	}
	if o := counts.others("3-full", "put", http.StatusInsufficientStorage); len(o) > 0 {
		t.Errorf("writes on the full disk answered other than 507: %v", o)
	}
	for _, p := range []string{"1-before", "2-filling", "3-full", "4-freed", "5-after", "6-restart"} {
		if o := counts.others(p, "get", http.StatusOK, http.StatusNotFound); len(o) > 0 {
			t.Errorf("reads in phase %s failed: %v", p, o)
		}
	}
	if o := counts.others("4-freed", "put", http.StatusOK, http.StatusNoContent, http.StatusInsufficientStorage); len(o) > 0 {
		t.Errorf("writes after the space returned answered %v", o)
	}
	load.check(t)
	return n
}

// TestFaultDiskFullDataDir: the data dir (Raft log, interpreter files,
// default checkpoints) on a 64 MiB tmpfs that fills up under a load.
func TestFaultDiskFullDataDir(t *testing.T) {
	small := mountTmpfs(t, 64)
	data := filepath.Join(small, "data")
	n := runDiskFull(t, small, nil, "--data-dir", data, "--disk-reserve", "8m", "--checkpoint-every", "200")
	n.stop()
}

// TestFaultDiskFullCheckpointDir: the checkpoint dir alone on a 32 MiB
// tmpfs. Writes are refused while it is full (the log tail could not be
// trimmed), checkpoints back off instead of retrying every tick, and one
// succeeds once the space returns.
func TestFaultDiskFullCheckpointDir(t *testing.T) {
	small := mountTmpfs(t, 32)
	ckpt := filepath.Join(small, "ckpt")
	onFull := func(n *faultNode) func() {
		errs := checkpoints(t, n, "error")
		return func() {
			// 1 s doubling from the first failure: tries at about 0, 1, 3
			// and 7 s; a retry every tick would be 10.
			d := checkpoints(t, n, "error") - errs
			t.Logf("checkpoint attempts that failed in the 10 s the disk was full: %v", d)
			if d < 1 || d > 5 {
				t.Errorf("%v failed checkpoints in 10 s on a full disk; want 1..5 (backing off)", d)
			}
		}
	}
	n := runDiskFull(t, small, onFull, "--data-dir", "data", "--checkpoint-uri", ckpt, "--disk-reserve", "8m",
		"--checkpoint-every", "50", "--checkpoint-interval", "1s")
	ok := func() float64 { return checkpoints(t, n, "ok") }
	// After the restart: the policy checkpoints again on the freed disk.
	before := ok()
	if st, b := n.call("PUT", "/v1/rdds/kv/keys/after", `"restart"`); st/100 != 2 {
		t.Fatalf("a write after the restart: %d %s", st, b)
	}
	waitFor(t, 30*time.Second, "a checkpoint after the space returned", func() bool { return ok() > before })
	n.stop()
}

// checkpoints reads srdd_checkpoints_total{result}.
func checkpoints(t *testing.T, n *faultNode, result string) float64 {
	t.Helper()
	st, b := n.call("GET", "/metrics", "")
	if st != http.StatusOK {
		t.Fatalf("GET /metrics: %d", st)
	}
	m := regexp.MustCompile(`(?m)^srdd_checkpoints_total\{result="` + result + `"\} (\S+)$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}
