//go:build faults

// Fault test of issue 24 (`make test-faults`): the owner of a durable RDD
// with 2 copies, in a 3-node cluster where no node can read another's
// disk, is killed with kill -9 and its data directory deleted, under a
// read and write load, 5 times in a row.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/srdd/srdd/internal/lincheck"
	"github.com/srdd/srdd/internal/peerid/peeridtest"
	"github.com/srdd/srdd/internal/testutil"
)

// privateNode is one node of the copies test. It runs in a mount
// namespace of its own where the directory holding every node's data
// (nodes) is an empty tmpfs and only its own data dir is bound back, at
// own: no process of it (the node, its interpreters) can see another
// node's files, nor the files of a node started after it.
type privateNode struct {
	id, http, raft string
	data, own      string // its data dir in the test's view, and where it sees it
	log            string
	cmd            *exec.Cmd
	mntNS          string // /proc/PID/ns/mnt of the node, to kill the whole "machine"
}

// copiesRounds is how many times the owner is killed (issue 24: 5).
func copiesRounds() int {
	if n, err := strconv.Atoi(os.Getenv("SRDD_COPY_KILL_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 5
}

// TestFaultCopiesSurviveOwnerLoss: a durable RDD with 2 copies (the
// default) on 3 nodes with node-local checkpoints (the default
// DATA-DIR/checkpoints) and no shared storage. Each round creates an RDD,
// loads it through the two nodes that do not own it, kills the owner's
// whole machine (every process in its mount namespace, kill -9) and
// deletes its data directory. The copy takes over: porcupine finds the
// round's reads and writes linearizable (every acknowledged write is
// read back), writes resume, and the RDD has 2 copies again, the new one
// built from a checkpoint streamed over the peer channel. The killed node
// then rejoins with an empty data directory.
func TestFaultCopiesSurviveOwnerLoss(t *testing.T) {
	if out, err := exec.Command("unshare", "-m", "true").CombinedOutput(); err != nil {
		t.Fatalf("this test runs each node in a mount namespace of its own (unshare -m, as root): %v %s", err, out)
	}
	bin, python := buildSrdd(t), testutil.Python(t)
	ca := peeridtest.NewCA(t, "copies-peer-ca")
	root := t.TempDir()
	nodesDir, logs := filepath.Join(root, "nodes"), t.TempDir()
	var nodes []*privateNode
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("n%d", i)
		p := &privateNode{id: id, http: testutil.FreeAddr(t), raft: testutil.FreeAddr(t),
			data: filepath.Join(nodesDir, id), own: filepath.Join(root, "own-"+id), log: filepath.Join(logs, id+".log")}
		for _, d := range []string{p.data, p.own} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		nodes = append(nodes, p)
	}
	start := func(p *privateNode, join string) {
		t.Helper()
		args := []string{"server", "--log-level", "warn", "--node-id", p.id, "--http-addr", p.http, "--raft-addr", p.raft,
			"--data-dir", p.own, "--python", python, "--spark-master", "local[1]",
			"--checkpoint-every", "200", "--checkpoint-interval", "2s", "--spark-conf", "spark.driver.memory=512m"}
		args = append(args, peerFlags(t, ca, p.id)...)
		if join == "" {
			args = append(args, "--bootstrap", "--admit", "n2,n3")
		} else {
			args = append(args, "--join", join)
		}
		logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		script := `mount --bind "$1" "$2" && mount -t tmpfs tmpfs "$3" && shift 3 && exec "$@"`
		p.cmd = exec.Command("unshare", append([]string{"-m", "--propagation", "private", "sh", "-c", script, "sh", p.data, p.own, nodesDir, bin}, args...)...)
		p.cmd.Stdout, p.cmd.Stderr = logf, logf
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = p.cmd.Wait(); logf.Close() }()
		waitFor(t, 10*time.Second, p.id+" in its namespace", func() bool {
			ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", p.cmd.Process.Pid))
			self, _ := os.Readlink("/proc/self/ns/mnt")
			p.mntNS = ns
			return err == nil && ns != self
		})
	}
	t.Cleanup(func() {
		for _, p := range nodes {
			killMachine(p)
			if t.Failed() {
				b, _ := os.ReadFile(p.log)
				lines := strings.Split(string(b), "\n")
				t.Logf("last lines of %s:\n%s", p.id, strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		}
	})
	start(nodes[0], "")
	waitFor(t, time.Minute, "n1 up", func() bool { v, err := pauseView(nodes[0].http); return err == nil && v.Leader != "" })
	start(nodes[1], nodes[0].http)
	start(nodes[2], nodes[0].http)
	allUp := func(via *privateNode) bool { return threeUp(via.http) }
	waitFor(t, 2*time.Minute, "3 members up", func() bool { return allUp(nodes[0]) })
	byID := map[string]*privateNode{}
	for _, p := range nodes {
		byID[p.id] = p
	}

	for round := 1; round <= copiesRounds(); round++ {
		name := fmt.Sprintf("ledger%d", round)
		var via *privateNode
		for _, p := range nodes {
			if allUp(p) {
				via = p
				break
			}
		}
		postJSON(t, "http://"+via.http+"/v1/rdds", `{"name":"`+name+`"}`, 201)
		var r copiesRDD
		waitFor(t, 5*time.Minute, name+" with 2 copies", func() bool {
			var err error
			r, err = copiesOn(via.http, name)
			return err == nil && r.State == "ready" && len(r.Copies) == 2 && !r.UnderReplicated
		})
		owner := byID[r.Node]
		var survivors []*privateNode
		for _, p := range nodes {
			if p != owner {
				survivors = append(survivors, p)
			}
		}
		counts := newStatusCounts("1-before")
		hist := lincheck.NewHistory()
		var loads []*kvLoad
		for _, s := range survivors {
			loads = append(loads, startKVLoadTimeout(10*time.Second, hist, &faultNode{t: t, base: "http://" + s.http}, name, 6, 2, 1, counts))
		}
		time.Sleep(4 * time.Second) // writes, and at least one checkpoint of each copy

		killMachine(owner)
		killed := time.Now()
		if err := os.RemoveAll(owner.data); err != nil {
			t.Fatal(err)
		}
		counts.setPhase("2-killed")
		var downAt, readAt, writeAt time.Duration
		probe := &http.Client{Timeout: 2 * time.Second}
		waitFor(t, time.Minute, owner.id+" marked down", func() bool {
			v, err := pauseView(survivors[0].http)
			return err == nil && memberStatus(v, owner.id) == "down"
		})
		downAt = time.Since(killed)
		var last string
		call := func(method, addr, key, body string, want int) bool {
			req, _ := http.NewRequest(method, "http://"+addr+"/v1/rdds/"+name+"/keys/"+key, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := probe.Do(req)
			if err != nil {
				last = err.Error()
				return false
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
			return resp.StatusCode == want
		}
		waitFor(t, 2*time.Minute, "a read of "+name+" through a survivor", func() bool {
			return call("GET", survivors[0].http, "k1", "", 200)
		})
		t.Logf("round %d: first read: %s", round, last)
		readAt = time.Since(killed)
		counts.setPhase("3-taken-over")
		if !pollFor(2*time.Minute, func() bool { return call("PUT", survivors[1].http, "probe", `1`, 204) }) {
			t.Fatalf("round %d: no write to %s through %s within 2 min; the last answer: %s", round, name, survivors[1].id, last)
		}
		writeAt = time.Since(killed)
		time.Sleep(3 * time.Second)
		for _, l := range loads {
			l.Halt()
		}
		loads[0].readAll("4-after")
		r, err := copiesOn(survivors[0].http, name)
		if err != nil || r.Node == owner.id {
			t.Fatalf("round %d: %s after the kill: %+v %v", round, name, r, err)
		}
		t.Logf("round %d: killed %s (owner of %s): down after %s, first read after %s, first write after %s; answers:%s",
			round, owner.id, name, downAt.Round(time.Millisecond), readAt.Round(time.Millisecond), writeAt.Round(time.Millisecond), counts)
		loads[0].check(t)

		// The killed machine comes back with an empty disk and rejoins;
		// the RDD has 2 copies again (on the survivors at the latest).
		if err := os.MkdirAll(owner.data, 0o700); err != nil {
			t.Fatal(err)
		}
		start(owner, survivors[0].http)
		waitFor(t, 3*time.Minute, "3 members up after "+owner.id+" rejoined", func() bool { return allUp(survivors[0]) })
		waitFor(t, 5*time.Minute, name+" with 2 copies again", func() bool {
			r, err := copiesOn(survivors[0].http, name)
			return err == nil && r.State == "ready" && len(r.Copies) == 2 && !r.UnderReplicated
		})
		// Every key of the round reads back through each survivor.
		for _, l := range loads {
			for k := 0; k < 6; k++ {
				resp, err := probe.Get(l.n.base + "/v1/rdds/" + name + "/keys/k" + strconv.Itoa(k))
				if err != nil {
					t.Errorf("round %d: read of k%d through %s: %v", round, k, l.n.base, err)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != 200 && resp.StatusCode != 404 {
					t.Errorf("round %d: read of k%d through %s answered %d", round, k, l.n.base, resp.StatusCode)
				}
			}
		}
	}
}

// copiesRDD is GET /v1/rdds/{name}: its owner's node, state and copies.
type copiesRDD struct {
	Node   string `json:"node"`
	State  string `json:"state"`
	Copies []struct {
		Node string `json:"node"`
		Role string `json:"role"`
	} `json:"copies"`
	UnderReplicated bool `json:"under_replicated"`
}

func copiesOn(addr, name string) (copiesRDD, error) {
	var v copiesRDD
	return v, describeInto(addr, name, &v)
}

// killMachine kills, with SIGKILL, every process of the node's mount
// namespace: the node, its interpreters and their JVMs, as if the
// machine were lost.
func killMachine(p *privateNode) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	if p.mntNS == "" {
		return
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err == nil && ns == p.mntNS {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// pollFor polls cond every 100 ms until it holds (true) or within ends.
func pollFor(within time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}
