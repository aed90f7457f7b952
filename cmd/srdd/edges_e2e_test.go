package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/srdd/srdd/internal/testutil"
)

// Tests of the edges (docs/ARCHITECTURE.md invariant 11): a client that
// waits for GET /readyz and then calls the API once succeeds the first
// time, at start-up and while the leader or a follower dies. Clients here
// never retry: every call must succeed the first time.

// edgeRounds is how many fresh nodes and clusters the readiness tests
// start: 20, or SRDD_EDGE_ROUNDS (`make test` runs 3; `make test-edges`,
// a CI step of its own, runs all 20).
func edgeRounds(t *testing.T) int { return envRounds(t, "SRDD_EDGE_ROUNDS", 20) }

// killRounds is how many times the kill tests kill a node: 5, or
// SRDD_KILL_ROUNDS (`make test` runs 2; `make test-edges` all 5).
func killRounds(t *testing.T) int { return envRounds(t, "SRDD_KILL_ROUNDS", 5) }

func envRounds(t *testing.T, name string, def int) int {
	if s := os.Getenv(name); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q is not a positive number", name, s)
		}
		return n
	}
	return def
}

// awaitReadyz polls GET /readyz (the only readiness signal a client has)
// until it answers 200. A 503 must say what the node waits for.
func awaitReadyz(t *testing.T, c *cluster3, addr string) time.Time {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, b, err := call("GET", "http://"+addr+"/readyz", "", "")
		if err == nil && st == 200 {
			return time.Now()
		}
		if err == nil && st != 503 {
			t.Fatalf("GET /readyz on %s answered %d: %s", addr, st, b)
		}
		if err == nil {
			var body struct {
				Status  string   `json:"status"`
				Waiting []string `json:"waiting_for"`
			}
			if json.Unmarshal(b, &body) != nil || body.Status != "not_ready" || len(body.Waiting) == 0 {
				t.Fatalf("a 503 from /readyz must say what it waits for, got %s", b)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never became ready\n%s", addr, c.logTails())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// patient is the client of once: a first write to a new session waits
// for Spark to start (up to --ready-timeout on the server).
var patient = &http.Client{Timeout: 3 * time.Minute}

// patientCall makes one call with the patient client.
func patientCall(method, url, body string) (int, []byte, error) {
	return callWith(patient, method, url, body, "")
}

// once makes one call and fails the test unless it answers want.
func once(t *testing.T, c *cluster3, method, url, body string, want int) []byte {
	t.Helper()
	st, b, err := patientCall(method, url, body)
	if err != nil || st != want {
		t.Fatalf("%s %s = %d %v, want %d (first try, no retries): %s\n%s", method, url, st, err, want, b, c.logTails())
	}
	return b
}

// firstCalls creates a session and a shared RDD in it through addr, then
// writes and reads a key, each call once.
func firstCalls(t *testing.T, c *cluster3, addr, rdd string) {
	t.Helper()
	base := "http://" + addr
	var sess struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(once(t, c, "POST", base+"/sessions", `{"kind":"pyspark"}`, 201), &sess); err != nil {
		t.Fatal(err)
	}
	once(t, c, "POST", base+"/v1/rdds", fmt.Sprintf(`{"name":%q,"session":%d}`, rdd, sess.ID), 201)
	once(t, c, "PUT", base+"/v1/rdds/"+rdd+"/keys/ak", `"Alaska"`, 204)
	var got struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(once(t, c, "GET", base+"/v1/rdds/"+rdd+"/keys/ak", "", 200), &got); err != nil || got.Value != "Alaska" {
		t.Fatalf("read back %+v, %v; want Alaska", got, err)
	}
}

// newCluster lays out n nodes (not started) with the flags tests use.
func newCluster(t *testing.T, bin string, n int) *cluster3 {
	c := &cluster3{t: t, bin: bin, python: testutil.Python(t), ckpt: filepath.Join(t.TempDir(), "checkpoints"), logs: t.TempDir()}
	for i := 1; i <= n; i++ {
		c.nodes = append(c.nodes, &srddProc{id: fmt.Sprintf("n%d", i), http: testutil.FreeAddr(t), raft: testutil.FreeAddr(t),
			dir: filepath.Join(t.TempDir(), fmt.Sprintf("n%d", i))})
	}
	// Registered before any node starts, so it runs after their kills: a
	// killed node's interpreters (real PySpark) may write into its data
	// dir for a moment more, which made the test's own temp dir removal
	// fail ("directory not empty"). The nodes' dirs go once they can.
	t.Cleanup(func() {
		for _, p := range c.nodes {
			for deadline := time.Now().Add(30 * time.Second); os.RemoveAll(p.dir) != nil && time.Now().Before(deadline); {
				time.Sleep(200 * time.Millisecond)
			}
		}
	})
	return c
}

// knock keeps calling GET /v1/rdds on addr from before the node listens
// until the caller halts it; once the port accepts, every answer must be
// 200 (a node that is starting answers reads, it does not fail them).
func knock(addr string) (bad *atomic.Value, w *testutil.Workers) {
	bad, w = &atomic.Value{}, &testutil.Workers{}
	w.Repeat(func(int) {
		st, b, err := call("GET", "http://"+addr+"/v1/rdds", "", "")
		if err == nil && st != 200 && bad.Load() == nil {
			bad.Store(fmt.Sprintf("GET /v1/rdds during start-up answered %d: %s", st, b))
		}
		time.Sleep(5 * time.Millisecond)
	})
	return bad, w
}

// A fresh node, edgeRounds times: wait for /readyz only, then create a
// session and an RDD, write and read a key, each call the first time.
// Meanwhile a client knocks from before the node listens.
func TestFreshNodeTakesFirstCallsAfterReadyz(t *testing.T) {
	freshRounds(t, 1, ", one node", func(c *cluster3, round int) time.Duration {
		p := c.nodes[0]
		bad, knocks := knock(p.http)
		began := time.Now()
		c.start(p, true)
		toReady := awaitReadyz(t, c, p.http).Sub(began)
		firstCalls(t, c, p.http, fmt.Sprintf("fresh%d", round))
		knocks.Halt()
		if msg := bad.Load(); msg != nil {
			t.Fatalf("round %d: %s", round, msg)
		}
		c.killNode(p)
		return toReady
	})
}

// A fresh 3-node cluster, edgeRounds times: the three processes start
// together (the joiners knock until the first serves); the calls go
// through a different node each round once all three answer /readyz.
func TestFreshClusterTakesFirstCallsAfterReadyz(t *testing.T) {
	freshRounds(t, 3, " on all three nodes", func(c *cluster3, round int) time.Duration {
		began := time.Now()
		for i, p := range c.nodes {
			c.start(p, i == 0)
		}
		var last time.Time
		for _, p := range c.nodes {
			if at := awaitReadyz(t, c, p.http); at.After(last) {
				last = at
			}
		}
		firstCalls(t, c, c.nodes[round%3].http, fmt.Sprintf("fresh%d", round))
		for _, p := range c.nodes {
			c.killNode(p)
		}
		return last.Sub(began)
	})
}

// freshRounds runs round edgeRounds times, each on a new cluster of nodes
// (not started), on the fake interpreter, and logs the spread of the
// times from process start to /readyz that round returns.
func freshRounds(t *testing.T, nodes int, what string, round func(c *cluster3, round int) time.Duration) {
	onFake(t)
	bin := buildSrdd(t)
	var toReady []time.Duration
	for i := 0; i < edgeRounds(t); i++ {
		toReady = append(toReady, round(newCluster(t, bin, nodes), i))
	}
	t.Logf("process start to /readyz%s (%d runs): %s", what, len(toReady), spread(toReady))
}

// spread formats min/median/max.
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no runs"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	r := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	return fmt.Sprintf("min %s, median %s, max %s (all: %v)", r(s[0]), r(s[len(s)/2]), r(s[len(s)-1]), s)
}

// rddAt describes a shared RDD through the first live node that answers.
func (c *cluster3) rddAt(name string) (rddView, bool) {
	for _, p := range c.nodes {
		c.mu.Lock()
		alive := p.alive
		c.mu.Unlock()
		if !alive {
			continue
		}
		var v rddView
		if st, b, err := call("GET", "http://"+p.http+"/v1/rdds/"+name, "", ""); err == nil && st == 200 && json.Unmarshal(b, &v) == nil {
			return v, true
		}
	}
	return rddView{}, false
}

// awaitRDDReady waits until name is ready on a live node other than not.
func (c *cluster3) awaitRDDReady(name, not string) rddView {
	c.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if v, ok := c.rddAt(name); ok && v.State == "ready" && v.Node != not {
			if p := c.byID(v.Node); p != nil && p.alive {
				return v
			}
		}
		if time.Now().After(deadline) {
			v, _ := c.rddAt(name)
			c.t.Fatalf("%s never became ready on a live node other than %s: %+v\n%s", name, not, v, c.logTails())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// leaderSeen polls the live nodes until one of them reports a leader
// other than not, and returns it with when it was first seen.
func (c *cluster3) leaderSeen(not string) (string, time.Time) {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		for _, p := range c.nodes {
			if !p.alive {
				continue
			}
			if v, err := viewOf(p.http); err == nil && v.Leader != "" && v.Leader != not {
				return v.Leader, time.Now()
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no new leader other than %s\n%s", not, c.logTails())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// steadyLoad writes and reads an RDD through its owner until stopped.
// Reads must never fail; a write may answer 503 outcome_unknown (it was
// in flight to a leader that died) but never anything else.
type steadyLoad struct {
	testutil.Workers
	reads, writes atomic.Int64
	failure       atomic.Value
	slowestRead   atomic.Int64 // ns
}

func startLoad(addr, rdd string) *steadyLoad {
	l := &steadyLoad{}
	base := "http://" + addr + "/v1/rdds/" + rdd + "/keys/"
	fail := func(msg string) {
		if l.failure.Load() == nil {
			l.failure.Store(msg)
		}
	}
	l.Repeat(func(i int) {
		st, b, err := call("PUT", base+fmt.Sprintf("w%d", i%64), strconv.Itoa(i), "")
		switch {
		case err != nil:
			fail(fmt.Sprintf("write: %v", err))
		case st == 204:
			l.writes.Add(1)
		case st == 503 && bytesContains(b, "outcome_unknown"):
		default:
			fail(fmt.Sprintf("write answered %d: %s", st, b))
		}
	})
	l.Repeat(func(i int) {
		began := time.Now()
		st, b, err := call("GET", base+fmt.Sprintf("w%d", i%64), "", "")
		if d := int64(time.Since(began)); d > l.slowestRead.Load() {
			l.slowestRead.Store(d)
		}
		switch {
		case err != nil:
			fail(fmt.Sprintf("read: %v", err))
		case st == 200 || keyNotFound(st, b):
			l.reads.Add(1)
		default:
			fail(fmt.Sprintf("read answered %d: %s", st, b))
		}
	})
	return l
}

// awaitProgress waits until the load has read and written something.
func (l *steadyLoad) awaitProgress(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for l.reads.Load() == 0 || l.writes.Load() == 0 {
		if msg := l.failure.Load(); msg != nil {
			t.Fatalf("the load failed before the kill: %s", msg)
		}
		if time.Now().After(deadline) {
			t.Fatal("the load made no progress in a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (l *steadyLoad) end(t *testing.T, what string) {
	t.Helper()
	l.Halt()
	if msg := l.failure.Load(); msg != nil {
		t.Fatalf("%s: the load under way failed: %s", what, msg)
	}
	if l.reads.Load() == 0 || l.writes.Load() == 0 {
		t.Fatalf("%s: the load made no progress: %d reads, %d writes", what, l.reads.Load(), l.writes.Load())
	}
	t.Logf("%s: load %d reads (slowest %s), %d writes", what, l.reads.Load(),
		time.Duration(l.slowestRead.Load()).Round(time.Millisecond), l.writes.Load())
}

func bytesContains(b []byte, s string) bool { return strings.Contains(string(b), s) }

// Kill -9 the leader (or a follower) of 3 real processes, 5 times, under
// a load of reads and writes: through every survivor, with no client
// retries, creating a shared RDD and a session succeeds, never on the
// dead node; the dead node's durable RDD is rebuilt on a survivor; the
// node then restarts and rejoins. The leader test ends with a new node
// joining under the load.
func TestCreatesThroughSurvivorsAfterLeaderKill(t *testing.T) { killAndCreate(t, true) }

func TestCreatesThroughSurvivorsAfterFollowerKill(t *testing.T) { killAndCreate(t, false) }

func killAndCreate(t *testing.T, leader bool) {
	onFake(t)
	rounds := killRounds(t)
	c := newCluster(t, buildSrdd(t), 3)
	for i, p := range c.nodes {
		c.start(p, i == 0)
	}
	for _, p := range c.nodes {
		awaitReadyz(t, c, p.http)
	}
	// One durable RDD on each node (scope=local: created where it is
	// sent), with one copy: a lost owner's RDD is adopted by a survivor,
	// so each round finds one off its victim. (Copies, which move RDDs
	// to where their copies are, have their own test: faults_copies.)
	for _, p := range c.nodes {
		once(t, c, "POST", "http://"+p.http+"/v1/rdds?scope=local", fmt.Sprintf(`{"name":"on_%s","replicas":1}`, p.id), 201)
	}
	for _, p := range c.nodes {
		c.awaitRDDReady("on_"+p.id, "")
	}
	var waits []time.Duration
	for round := 0; round < rounds; round++ {
		cur, _ := c.leaderSeen("")
		victim := c.byID(cur)
		if !leader {
			for _, p := range c.nodes {
				if p.id != cur {
					victim = p
					break
				}
			}
		}
		// The load runs on an RDD whose owner survives.
		var steady rddView
		var steadyName string
		for _, p := range c.nodes {
			if v, ok := c.rddAt("on_" + p.id); ok && v.Node != victim.id && v.State == "ready" {
				steady, steadyName = v, "on_"+p.id
				break
			}
		}
		if steadyName == "" {
			t.Fatalf("round %d: no ready RDD off %s", round, victim.id)
		}
		load := startLoad(c.byID(steady.Node).http, steadyName)
		load.awaitProgress(t)
		// Every RDD the victim owns now: it must come back on a survivor.
		var owned []string
		for _, p := range c.nodes {
			if v, ok := c.rddAt("on_" + p.id); ok && v.Node == victim.id {
				owned = append(owned, "on_"+p.id)
			}
		}
		killed := time.Now()
		c.killNode(victim)
		from := killed
		if leader {
			var newLeader string
			newLeader, from = c.leaderSeen(victim.id)
			t.Logf("round %d: killed leader %s; %s leads after %s", round, victim.id, newLeader, from.Sub(killed).Round(time.Millisecond))
		} else {
			t.Logf("round %d: killed follower %s (leader %s)", round, victim.id, cur)
		}
		// Every survivor at once: a shared RDD and a session, one call each.
		type attempt struct {
			via, what, url, body string
			status               int
			resp                 []byte
			err                  error
			took                 time.Duration
		}
		var tries []*attempt
		for _, p := range c.nodes {
			if p.alive {
				tries = append(tries,
					&attempt{via: p.id, what: "RDD", url: "http://" + p.http + "/v1/rdds",
						body: fmt.Sprintf(`{"name":"r%d_via_%s","mode":"memory"}`, round, p.id)},
					&attempt{via: p.id, what: "session", url: "http://" + p.http + "/sessions", body: `{"kind":"pyspark"}`})
			}
		}
		var wg sync.WaitGroup
		for _, a := range tries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a.status, a.resp, a.err = patientCall("POST", a.url, a.body)
				a.took = time.Since(from)
			}()
		}
		wg.Wait()
		for _, a := range tries {
			var created struct {
				Node string `json:"node"`
				ID   int64  `json:"id"`
			}
			if a.err != nil || a.status != 201 || json.Unmarshal(a.resp, &created) != nil {
				t.Fatalf("round %d: %s created through %s = %d %v, want 201 (first try, no retries): %s\n%s",
					round, a.what, a.via, a.status, a.err, a.resp, c.logTails())
			}
			if created.Node == "" || created.Node == victim.id {
				t.Fatalf("round %d: %s created through %s placed on %q (dead: %s): %s", round, a.what, a.via, created.Node, victim.id, a.resp)
			}
			if a.what == "session" { // it did its job; do not keep a JVM per round
				once(t, c, "DELETE", fmt.Sprintf("%s/%d", a.url, created.ID), "", 200)
			}
			waits = append(waits, a.took)
			t.Logf("round %d: %s through %s created on %s %s after the %s", round, a.what, a.via, created.Node,
				a.took.Round(time.Millisecond), map[bool]string{true: "new leader", false: "kill"}[leader])
		}
		for _, name := range owned {
			c.awaitRDDReady(name, victim.id)
		}
		load.end(t, fmt.Sprintf("round %d", round))
		c.start(victim, false) // restart: it rejoins with its Raft state
		awaitReadyz(t, c, victim.http)
	}
	what := map[bool]string{true: "new leader", false: "follower kill"}[leader]
	t.Logf("time from %s to a successful create through a survivor (%d creates): %s", what, len(waits), spread(waits))
	if !leader {
		return
	}
	// A new node joins while the load runs, then takes a create at once.
	v, _ := c.rddAt("on_n1")
	load := startLoad(c.byID(v.Node).http, "on_n1")
	n4 := &srddProc{id: "n4", http: testutil.FreeAddr(t), raft: testutil.FreeAddr(t), dir: filepath.Join(t.TempDir(), "n4")}
	c.nodes = append(c.nodes, n4)
	c.start(n4, false)
	awaitReadyz(t, c, n4.http)
	once(t, c, "POST", "http://"+n4.http+"/v1/rdds", `{"name":"via_n4","mode":"memory"}`, 201)
	load.end(t, "n4 joining")
}

// A node run as systemd runs a Type=notify unit sends READY=1 once it can
// take a write: /readyz is 200 when the notification arrives, and
// `srdd ready` (the compose health check) exits 0 against it and 1
// against an address where nothing listens.
func TestReadyNotifiesSystemdAndProbes(t *testing.T) {
	bin := buildSrdd(t)
	sock := filepath.Join(t.TempDir(), "notify.sock")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := newCluster(t, bin, 1)
	t.Setenv("NOTIFY_SOCKET", sock) // inherited by the server process
	c.start(c.nodes[0], true)
	_ = ln.SetReadDeadline(time.Now().Add(time.Minute))
	buf := make([]byte, 128)
	n, err := ln.Read(buf)
	if err != nil {
		t.Fatalf("no notification from the node: %v\n%s", err, c.logTails())
	}
	if got := string(buf[:n]); got != "READY=1" {
		t.Fatalf("systemd got %q, want READY=1", got)
	}
	once(t, c, "GET", "http://"+c.nodes[0].http+"/readyz", "", 200)
	if out, err := exec.Command(bin, "ready", "--addr", c.nodes[0].http).CombinedOutput(); err != nil {
		t.Fatalf("srdd ready against a ready node: %v: %s", err, out)
	}
	out, err := exec.Command(bin, "ready", "--addr", testutil.FreeAddr(t)).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("srdd ready against nothing = %v (%s), want exit status 1", err, out)
	}
}
