package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/srdd/srdd/internal/lincheck"
	"github.com/srdd/srdd/internal/peerid/peeridtest"
	"github.com/srdd/srdd/internal/testutil"
)

// cluster3 is three srdd processes sharing a checkpoint directory.
type cluster3 struct {
	t      *testing.T
	bin    string
	python string
	ckpt   string
	logs   string // each node's output, kept with the test's temp files
	mu     sync.Mutex
	nodes  []*srddProc
	ca     *peeridtest.CA // peer TLS between the nodes (made on first start)
}

type srddProc struct {
	id, http, raft, dir string
	alive               bool
	kill                func()
}

func (c *cluster3) start(p *srddProc, first bool) {
	args := []string{"--node-id", p.id, "--http-addr", p.http, "--raft-addr", p.raft, "--data-dir", p.dir,
		"--python", c.python, "--spark-master", "local[1]", "--checkpoint-uri", c.ckpt, "--checkpoint-every", "300",
		"--checkpoint-interval", "3s", "--spark-conf", "spark.driver.memory=512m"}
	if c.ca == nil {
		c.ca = peeridtest.NewCA(c.t, "e2e-peer-ca")
	}
	args = append(args, peerFlags(c.t, c.ca, p.id)...)
	if first {
		args = append(args, "--bootstrap", "--admit", "n2,n3,n4")
	} else {
		// Ignored by a node that has Raft state (a restart).
		args = append(args, "--join", c.nodes[0].http+","+c.nodes[1].http+","+c.nodes[2].http)
	}
	// Not startSrdd: after a restart of the whole cluster no node finishes
	// starting (and announces itself) until a quorum is up, so the nodes
	// are started without waiting; waitView checks they are up.
	logf, err := os.OpenFile(filepath.Join(c.logs, p.id+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	srv := exec.Command(c.bin, append([]string{"server", "--log-level", "warn"}, args...)...)
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		_ = srv.Process.Kill()
		_, _ = srv.Process.Wait()
		logf.Close()
	})
	c.mu.Lock()
	p.alive = true
	p.kill = func() { _ = srv.Process.Signal(syscall.SIGKILL); _, _ = srv.Process.Wait() }
	c.mu.Unlock()
}

// logTails returns the last lines each node wrote, for a failure report.
func (c *cluster3) logTails() string {
	var sb strings.Builder
	for _, p := range c.nodes {
		b, _ := os.ReadFile(filepath.Join(c.logs, p.id+".log"))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		var keep []string
		for _, l := range lines {
			if !strings.Contains(l, "heartbeat") && !strings.Contains(l, "appendEntries") {
				keep = append(keep, l)
			}
		}
		fmt.Fprintf(&sb, "== %s (alive %v)\n%s\n", p.id, p.alive, strings.Join(keep[max(0, len(keep)-15):], "\n"))
	}
	return sb.String()
}

func (c *cluster3) killNode(p *srddProc) {
	c.mu.Lock()
	p.alive = false
	kill := p.kill
	c.mu.Unlock()
	kill()
}

// live returns the HTTP address of a random live node.
func (c *cluster3) live(r *rand.Rand) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var up []string
	for _, p := range c.nodes {
		if p.alive {
			up = append(up, p.http)
		}
	}
	if len(up) == 0 {
		return c.nodes[0].http
	}
	return up[r.Intn(len(up))]
}

func (c *cluster3) byID(id string) *srddProc {
	for _, p := range c.nodes {
		if p.id == id {
			return p
		}
	}
	return nil
}

var httpc = &http.Client{Timeout: 10 * time.Second}

func call(method, url, body, idem string) (int, []byte, error) {
	return callWith(httpc, method, url, body, idem)
}

// callWith makes one call with hc; idem, if set, is its Idempotency-Key.
func callWith(hc *http.Client, method, url, body, idem string) (int, []byte, error) {
	return callVia(hc, method, url, body, map[string]string{"Idempotency-Key": idem})
}

// callVia makes one JSON call with hc and the headers in hdr ("" values
// are not sent), and reads the answer.
func callVia(hc *http.Client, method, url, body string, hdr map[string]string) (int, []byte, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

type rddView struct {
	Node  string `json:"node"`
	State string `json:"state"`
}

// Kill -9 whole nodes of a 3-node cluster, the owner of a durable RDD and
// the Raft leader in turn, 10 times, under a load of writes and
// linearizable and default reads through random nodes: no acknowledged
// write is lost, the RDD is served again from a survivor each time, the
// recorded history is linearizable (porcupine; a write that failed is kept
// as "may have happened"), default reads see the client's own writes, and
// after a restart of the whole cluster all the data is back.
func TestDurableClusterSurvivesNodeKills(t *testing.T) {
	onFake(t)
	c := &cluster3{t: t, bin: buildSrdd(t), python: testutil.Python(t), ckpt: filepath.Join(t.TempDir(), "checkpoints"), logs: t.TempDir()}
	for i := 1; i <= 3; i++ {
		c.nodes = append(c.nodes, &srddProc{id: fmt.Sprintf("n%d", i), http: testutil.FreeAddr(t), raft: testutil.FreeAddr(t),
			dir: filepath.Join(t.TempDir(), fmt.Sprintf("n%d", i))})
	}
	for i, p := range c.nodes {
		c.start(p, i == 0)
	}
	waitView := func(what string, cond func(v clusterView) bool) clusterView {
		t.Helper()
		var got clusterView
		err := testutil.Poll(2*time.Minute, 100*time.Millisecond, func() (bool, error) {
			for _, p := range c.nodes {
				if !p.alive {
					continue
				}
				if v, err := viewOf(p.http); err == nil && cond(v) {
					got = v
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("cluster never reached: %s\n%s", what, c.logTails())
		}
		return got
	}
	allUp := func(v clusterView) bool {
		up := 0
		for _, m := range v.Members {
			if m.Status == "up" {
				up++
			}
		}
		return v.Leader != "" && up == 3
	}
	waitView("3 members up", allUp)
	postJSON(t, "http://"+c.nodes[0].http+"/v1/rdds", `{"name":"ledger"}`, 201)
	// Any live node may answer; the first that does.
	rdd := func() rddView {
		v, _ := c.rddAt("ledger")
		return v
	}
	waitReady := func(what string) rddView {
		t.Helper()
		var v rddView
		err := testutil.Poll(3*time.Minute, 200*time.Millisecond, func() (bool, error) {
			v = rdd()
			if v.State == "ready" {
				if p := c.byID(v.Node); p != nil && p.alive {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("%s: ledger not ready on a live node: %+v\n%s", what, v, c.logTails())
		}
		return v
	}
	waitReady("start")

	h := lincheck.NewHistory()
	var acked, failedPuts, ryw atomic.Int64
	var rywErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const clients, keysPer = 4, 4
	for cl := 0; cl < clients; cl++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(cl)))
			// One writer per key: allowed[key] are the values a read may
			// return for read-your-writes: the last acknowledged one, and
			// every write whose outcome is unknown (given up on by this
			// client, it may still be applied later by the server).
			allowed := map[string][]string{}
			unknown := map[string][]string{}
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("c%d-k%d", cl, r.Intn(keysPer))
				url := func() string { return "http://" + c.live(r) + "/v1/rdds/ledger/keys/" + key }
				switch r.Intn(3) {
				case 0: // put, retried with its idempotency key until acknowledged
					val := fmt.Sprintf(`{"c":%d,"s":%d}`, cl, seq)
					idem := fmt.Sprintf("%s-%d", key, seq)
					callAt := h.Now()
					ok := false
					for try := 0; try < 40 && !ok; try++ {
						st, _, err := call("PUT", url(), val, idem)
						ok = err == nil && st == 204
						if !ok {
							select {
							case <-stop:
								try = 40
							case <-time.After(250 * time.Millisecond):
							}
						}
					}
					if ok {
						acked.Add(1)
						allowed[key] = append([]string{val}, unknown[key]...)
					} else {
						failedPuts.Add(1) // may have happened, at any time after the call
						unknown[key] = append(unknown[key], val)
						allowed[key] = append(allowed[key], val)
					}
					h.Put(cl, key, val, callAt, ok)
				case 1: // linearizable read
					callAt := h.Now()
					st, b, err := call("GET", url()+"?consistency=linearizable", "", "")
					if err != nil || (st != 200 && !keyNotFound(st, b)) {
						continue // a failed read returned nothing: leave it out
					}
					h.Get(cl, key, valueOf(b, st), callAt)
				default: // default read: must see this client's own writes
					st, b, err := call("GET", url(), "", "")
					if err != nil || (st != 200 && !keyNotFound(st, b)) {
						continue
					}
					got := valueOf(b, st)
					want := allowed[key]
					okRead := len(want) == 0 && got == ""
					for _, w := range want {
						okRead = okRead || lincheck.JSONEqual(got, w)
					}
					ryw.Add(1)
					if !okRead {
						rywErr.Store(fmt.Sprintf("key %s: read %q, acknowledged/pending %q", key, got, want))
					}
				}
			}
		}()
	}

	for kill := 0; kill < 10; kill++ {
		time.Sleep(2 * time.Second)
		owner := waitReady(fmt.Sprintf("before kill %d", kill))
		v := waitView("a leader and 3 members up", allUp)
		victim := c.byID(owner.Node)
		what := "owner"
		if kill%2 == 1 {
			victim, what = c.byID(v.Leader), "leader"
		}
		if victim.id == v.Leader {
			what += " (the leader)"
		}
		t.Logf("kill %d: kill -9 %s, %s; ledger on %s", kill, victim.id, what, owner.Node)
		c.killNode(victim)
		now := waitReady(fmt.Sprintf("after kill %d", kill))
		if now.Node == victim.id {
			t.Fatalf("kill %d: ledger still on the dead node %s", kill, victim.id)
		}
		c.start(victim, false)
		waitView("3 members up again", allUp)
	}
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	if e := rywErr.Load(); e != nil {
		t.Fatalf("read-your-writes broken at the default level: %v", e)
	}

	// A restart of the whole cluster brings every acknowledged write back.
	for _, p := range c.nodes {
		c.killNode(p)
	}
	for _, p := range c.nodes {
		c.start(p, false)
	}
	waitView("3 members up after a full restart", allUp)
	waitReady("after the full restart")
	r := rand.New(rand.NewSource(99))
	for cl := 0; cl < clients; cl++ {
		for k := 0; k < keysPer; k++ {
			key := fmt.Sprintf("c%d-k%d", cl, k)
			callAt := h.Now()
			st, b, err := call("GET", "http://"+c.live(r)+"/v1/rdds/ledger/keys/"+key+"?consistency=linearizable", "", "")
			if err != nil || (st != 200 && !keyNotFound(st, b)) {
				t.Fatalf("final read of %s: %d %s %v", key, st, b, err)
			}
			h.Get(100, key, valueOf(b, st), callAt)
		}
	}
	t.Logf("%d acknowledged writes, %d writes with unknown outcome, %d default reads checked, %d operations in the history",
		acked.Load(), failedPuts.Load(), ryw.Load(), h.Len())
	if acked.Load() < 50 {
		t.Fatalf("only %d writes acknowledged: the load did not run", acked.Load())
	}
	if res := h.Check(2 * time.Minute); res != porcupine.Ok {
		t.Fatalf("history is not linearizable (porcupine: %v)", res)
	}
}

// keyNotFound tells a 404 for an absent key from one for an absent RDD.
func keyNotFound(status int, b []byte) bool {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	return status == 404 && json.Unmarshal(b, &e) == nil && e.Error.Code == "key_not_found"
}

// valueOf returns the JSON value of a key GET's answer ("" for 404).
func valueOf(b []byte, status int) string {
	if status == 404 {
		return ""
	}
	var r struct {
		Value json.RawMessage `json:"value"`
	}
	_ = json.Unmarshal(b, &r)
	return string(r.Value)
}
