//go:build faults

// Fault test of issue 22 part 5 (`make test-faults`): the owner of a
// durable RDD in a 3-node cluster is paused (SIGSTOP) under a read and
// write load, then resumed (SIGCONT).
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/srdd/srdd/internal/lincheck"
	"github.com/srdd/srdd/internal/peerid/peeridtest"
	"github.com/srdd/srdd/internal/testutil"
)

// pauseNode is one node of the paused-owner test.
type pauseNode struct {
	id, http, raft, dir string
	cmd                 *exec.Cmd
	log                 string
}

// startPauseCluster starts three nodes with peer TLS, a shared
// checkpoint dir and the default --down-after (3 s).
func startPauseCluster(t *testing.T) []*pauseNode {
	bin, python := buildSrdd(t), testutil.Python(t)
	ca := peeridtest.NewCA(t, "pause-peer-ca")
	ckpt, logs := filepath.Join(t.TempDir(), "checkpoints"), t.TempDir()
	var nodes []*pauseNode
	for i := 1; i <= 3; i++ {
		nodes = append(nodes, &pauseNode{id: fmt.Sprintf("n%d", i), http: testutil.FreeAddr(t), raft: testutil.FreeAddr(t),
			dir: filepath.Join(t.TempDir(), fmt.Sprintf("n%d", i)), log: filepath.Join(logs, fmt.Sprintf("n%d.log", i))})
	}
	for i, p := range nodes {
		args := []string{"server", "--log-level", "warn", "--node-id", p.id, "--http-addr", p.http, "--raft-addr", p.raft,
			"--data-dir", p.dir, "--python", python, "--spark-master", "local[1]", "--checkpoint-uri", ckpt,
			"--checkpoint-every", "300", "--checkpoint-interval", "3s", "--spark-conf", "spark.driver.memory=512m"}
		args = append(args, peerFlags(t, ca, p.id)...)
		if i == 0 {
			args = append(args, "--bootstrap", "--admit", "n2,n3")
		} else {
			args = append(args, "--join", nodes[0].http)
		}
		logf, err := os.Create(p.log)
		if err != nil {
			t.Fatal(err)
		}
		p.cmd = exec.Command(bin, args...)
		p.cmd.Stdout, p.cmd.Stderr = logf, logf
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
			_ = p.cmd.Process.Kill()
			_, _ = p.cmd.Process.Wait()
			logf.Close()
			if t.Failed() {
				b, _ := os.ReadFile(p.log)
				lines := strings.Split(string(b), "\n")
				t.Logf("last lines of %s:\n%s", p.id, strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		})
	}
	return nodes
}

// pauseView is GET /v1/cluster through addr, with a short timeout (a
// paused node never answers).
func pauseView(addr string) (clusterView, error) {
	return viewVia(&http.Client{Timeout: 2 * time.Second}, addr)
}

// threeUp reports whether addr has a leader and 3 members up.
func threeUp(addr string) bool {
	v, err := pauseView(addr)
	if err != nil || v.Leader == "" {
		return false
	}
	up := 0
	for _, m := range v.Members {
		if m.Status == "up" {
			up++
		}
	}
	return up == 3
}

func memberStatus(v clusterView, id string) string {
	for _, m := range v.Members {
		if m.ID == id {
			return m.Status
		}
	}
	return ""
}

// rddOn is GET /v1/rdds/{name} through addr: its node and state.
func rddOn(addr, name string) (rddView, error) {
	var v rddView
	return v, describeInto(addr, name, &v)
}

// describeInto decodes GET /v1/rdds/{name} through addr into v, with a
// short timeout (a paused or killed node never answers).
func describeInto(addr, name string, v any) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://" + addr + "/v1/rdds/" + name)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /v1/rdds/%s: %d", name, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// TestFaultPausedOwner pauses the node that owns a durable RDD (not the
// leader) under a load through the two others: within --down-after (3 s,
// not the transport's 10 s timeout) it is marked down, the RDD fails over
// to a survivor and takes writes there, and a new RDD avoids the paused
// node. Resumed, the node takes its replacement from the log before it
// serves a read, so reads through it are never stale (porcupine over all
// reads and writes).
func TestFaultPausedOwner(t *testing.T) {
	nodes := startPauseCluster(t)
	byID := map[string]*pauseNode{}
	for _, p := range nodes {
		byID[p.id] = p
	}
	waitFor(t, 2*time.Minute, "3 members up", func() bool { return threeUp(nodes[0].http) })
	// The owner must be a follower: placement prefers one on a tie.
	var owner *pauseNode
	var name string
	for i := 0; i < 3 && owner == nil; i++ {
		name = fmt.Sprintf("ledger%d", i)
		postJSON(t, "http://"+nodes[0].http+"/v1/rdds", `{"name":"`+name+`"}`, 201)
		var r rddView
		waitFor(t, 3*time.Minute, name+" ready", func() bool {
			var err error
			r, err = rddOn(nodes[0].http, name)
			return err == nil && r.State == "ready"
		})
		if v, _ := pauseView(nodes[0].http); v.Leader != r.Node {
			owner = byID[r.Node]
		}
	}
	if owner == nil {
		t.Fatal("every RDD landed on the leader")
	}
	var survivors []*pauseNode
	for _, p := range nodes {
		if p != owner {
			survivors = append(survivors, p)
		}
	}
	t.Logf("%s is owned by %s; pausing it", name, owner.id)

	counts := newStatusCounts("1-before")
	hist := lincheck.NewHistory()
	loads := make([]*kvLoad, 0, 2)
	t.Logf("load clients from %d: 2 writers and 1 reader through %s, then through %s; then 2 readers through %s",
		loadClients.Load()+1, survivors[0].id, survivors[1].id, owner.id)
	for _, s := range survivors {
		// Clients give up after 10 s (status 0). A call forwarded to the
		// paused owner is cut with a 503 once the owner is marked down
		// (--down-after, 3 s).
		loads = append(loads, startKVLoadTimeout(10*time.Second, hist, &faultNode{t: t, base: "http://" + s.http}, name, 6, 2, 1, counts))
	}
	time.Sleep(5 * time.Second)

	if err := owner.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	counts.setPhase("2-paused")
	var downAfter, movedAfter time.Duration
	waitFor(t, 30*time.Second, owner.id+" marked down", func() bool {
		v, err := pauseView(survivors[0].http)
		return err == nil && memberStatus(v, owner.id) == "down"
	})
	downAfter = time.Since(paused)
	t.Logf("%s marked down %s after SIGSTOP", owner.id, downAfter.Round(time.Millisecond))
	if downAfter > 6*time.Second {
		t.Errorf("the paused owner was marked down after %s; want within --down-after (3 s) and a tick", downAfter.Round(time.Millisecond))
	}
	// A create now avoids the paused node.
	postJSON(t, "http://"+survivors[0].http+"/v1/rdds", `{"name":"fresh"}`, 201)
	if r, err := rddOn(survivors[0].http, "fresh"); err != nil || r.Node == owner.id {
		t.Errorf("a create during the pause: %+v %v; want it on a live node", r, err)
	}
	waitFor(t, 3*time.Minute, name+" ready on a survivor", func() bool {
		r, err := rddOn(survivors[0].http, name)
		return err == nil && r.State == "ready" && r.Node != owner.id
	})
	movedAfter = time.Since(paused)
	counts.setPhase("3-moved")
	t.Logf("%s served by a survivor %s after SIGSTOP", name, movedAfter.Round(time.Millisecond))
	time.Sleep(5 * time.Second)

	// Resume: reads through the resumed node join the history.
	if err := owner.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	counts.setPhase("4-resumed")
	back := startKVLoadTimeout(10*time.Second, hist, &faultNode{t: t, base: "http://" + owner.http}, name, 6, 0, 2, counts)
	waitFor(t, 30*time.Second, owner.id+" up again", func() bool {
		v, err := pauseView(survivors[0].http)
		return err == nil && memberStatus(v, owner.id) == "up"
	})
	t.Logf("%s up again %s after SIGCONT", owner.id, time.Since(resumed).Round(time.Millisecond))
	time.Sleep(8 * time.Second)
	back.Halt()
	for _, l := range loads {
		l.Halt()
	}
	if r, err := rddOn(owner.http, name); err != nil || r.Node == owner.id {
		t.Errorf("after the resume %s answers %s: %+v %v; want it served by the survivor", owner.id, name, r, err)
	}
	loads[0].readAll("5-after")
	t.Logf("answers by phase (kind status: count; 0 = no answer within 10 s):%s", counts)
	// Reads forwarded to the paused owner are cut with a 503 once it is
	// marked down, and a read of an RDD being moved answers 503 within
	// the recovery wait (5 s): none waits out the clients' 10 s. (A write
	// to an RDD being moved waits for its new session, up to
	// --ready-timeout, so a put may.)
	for _, phase := range []string{"1-before", "2-paused", "3-moved"} {
		if n := counts.get(phase, "get", 0); n > 0 {
			t.Errorf("%d reads begun in phase %s had no answer within 10 s; a forward to the paused owner should be cut once it is marked down", n, phase)
		}
	}
	if counts.get("3-moved", "put", http.StatusNoContent)+counts.get("3-moved", "put", http.StatusOK) == 0 {
		t.Errorf("no write succeeded once the RDD moved")
	}
	// The first reads through the resumed node wait for its read barrier
	// with the leader (they may pass the clients' 10 s); none may fail
	// otherwise, and porcupine below finds none stale.
	if o := counts.others("4-resumed", "get", 0, http.StatusOK, http.StatusNotFound, http.StatusServiceUnavailable); len(o) > 0 {
		t.Errorf("reads after the resume answered %v", o)
	}
	loads[0].check(t)
}
