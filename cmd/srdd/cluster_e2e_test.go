package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/srdd/srdd/internal/peerid/peeridtest"
	"github.com/srdd/srdd/internal/testutil"
)

type clusterView struct {
	Leader  string `json:"leader"`
	Members []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	} `json:"members"`
}

func viewOf(addr string) (clusterView, error) { return viewVia(http.DefaultClient, addr) }

// viewVia is GET /v1/cluster through addr with hc.
func viewVia(hc *http.Client, addr string) (clusterView, error) {
	var v clusterView
	resp, err := hc.Get("http://" + addr + "/v1/cluster")
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&v)
	return v, err
}

// Three real srdd processes; kill -9 the leader while a client keeps
// reading and writing a shared RDD held by a surviving node through both
// survivors: a new leader is elected, no call fails, the registry takes
// new writes.
func TestThreeProcessesSurviveLeaderKill(t *testing.T) {
	onFake(t)
	python := testutil.Python(t)
	bin := buildSrdd(t)
	type proc struct {
		id, http string
		kill     func()
	}
	var procs []*proc
	ca := peeridtest.NewCA(t, "e2e-peer-ca")
	for i := 1; i <= 3; i++ {
		p := &proc{id: fmt.Sprintf("n%d", i), http: testutil.FreeAddr(t)}
		args := []string{"--node-id", p.id, "--http-addr", p.http, "--raft-addr", testutil.FreeAddr(t),
			"--data-dir", filepath.Join(t.TempDir(), p.id), "--python", python, "--spark-master", "local[1]"}
		args = append(args, peerFlags(t, ca, p.id)...)
		if i == 1 {
			args = append(args, "--bootstrap", "--admit", "n2,n3")
		} else {
			args = append(args, "--join", procs[0].http)
		}
		srv, _ := startSrdd(t, bin, args...)
		p.kill = func() { _ = srv.Process.Signal(syscall.SIGKILL); _, _ = srv.Process.Wait() }
		procs = append(procs, p)
	}
	byID := map[string]*proc{}
	for _, p := range procs {
		byID[p.id] = p
	}
	var v clusterView
	var err error
	if testutil.Poll(time.Minute, 100*time.Millisecond, func() (bool, error) {
		v, err = viewOf(procs[2].http)
		return err == nil && v.Leader != "" && len(v.Members) == 3, nil
	}) != nil {
		t.Fatalf("cluster did not form: %+v %v", v, err)
	}
	leader := byID[v.Leader]
	out, err := exec.Command(bin, "--addr", procs[1].http, "cluster", "status").CombinedOutput()
	if err != nil || strings.Count(string(out), "voter") != 3 || !strings.Contains(string(out), "leader "+leader.id) {
		t.Fatalf("srdd cluster status = %s (%v)", out, err)
	}

	// A shared RDD placed by the cluster: on a follower (least loaded).
	var s struct {
		ID   int64  `json:"id"`
		Node string `json:"node"`
	}
	b := postJSON(t, "http://"+leader.http+"/sessions", `{"kind":"pyspark"}`, 201)
	_ = json.Unmarshal(b, &s)
	if s.Node == leader.id {
		t.Fatalf("session placed on the leader %s", s.Node)
	}
	postJSON(t, "http://"+leader.http+"/v1/rdds", fmt.Sprintf(`{"name":"e2e","session":%d,"mode":"memory"}`, s.ID), 201)
	var survivors []*proc
	for _, p := range procs {
		if p != leader {
			survivors = append(survivors, p)
		}
	}
	// The first write waits for Spark to come up (bounded by --ready-timeout).
	put(t, survivors[0].http, "warmup", `0`)

	// Load: sets and gets through both survivors, before, during and after
	// the kill. Every acknowledged set must be readable afterwards.
	var ops, failures atomic.Int64
	var mu sync.Mutex
	var errs []string
	written := map[string]string{}
	var load testutil.Workers
	for w := 0; w < 4; w++ {
		load.Repeat(func(i int) {
			via := survivors[i%2].http
			key := fmt.Sprintf("w%d-%d", w, i)
			val := fmt.Sprintf(`"v%d"`, i)
			err := tryPut(via, key, val)
			if err == nil {
				_, err = tryGet(survivors[(i+1)%2].http, key, val)
			}
			ops.Add(1)
			if err != nil {
				failures.Add(1)
				mu.Lock()
				errs = append(errs, err.Error())
				mu.Unlock()
				return
			}
			mu.Lock()
			written[key] = val
			mu.Unlock()
		})
	}
	time.Sleep(2 * time.Second)
	killed := time.Now()
	leader.kill()
	var newLeader string
	for {
		if v, err := viewOf(survivors[0].http); err == nil && v.Leader != "" && v.Leader != leader.id {
			newLeader = v.Leader
			break
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatal("no new leader within 30 s of killing the leader")
		}
		time.Sleep(20 * time.Millisecond)
	}
	failover := time.Since(killed)
	time.Sleep(3 * time.Second)
	load.Halt()
	t.Logf("new leader %s %s after kill -9 of %s; %d calls during the test, %d failed", newLeader, failover, leader.id, ops.Load(), failures.Load())
	if failures.Load() > 0 {
		t.Fatalf("%d of %d calls failed around the leader kill, e.g. %v", failures.Load(), ops.Load(), errs[:min(3, len(errs))])
	}
	for key, val := range written {
		if _, err := tryGet(survivors[0].http, key, val); err != nil {
			t.Fatalf("acknowledged write lost: %v", err)
		}
	}
	// The CLI fails over: the dead leader is listed first.
	out, err = exec.Command(bin, "--addr", leader.http+","+survivors[1].http, "get", "e2e", "warmup").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Fatalf("srdd get with the first node dead = %q, %v", out, err)
	}
	// The registry takes new writes through either survivor.
	postJSON(t, "http://"+survivors[1].http+"/v1/rdds", fmt.Sprintf(`{"name":"after","session":%d,"mode":"memory"}`, s.ID), 201)
	if v, err := viewOf(survivors[1].http); err != nil || v.Leader != newLeader {
		t.Fatalf("survivors disagree on the leader: %+v %v", v, err)
	}
}

func postJSON(t *testing.T, url, body string, want int) []byte {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("POST %s %s: %d %s", url, body, resp.StatusCode, b)
	}
	return b
}

func put(t *testing.T, addr, key, val string) {
	t.Helper()
	if err := tryPut(addr, key, val); err != nil {
		t.Fatal(err)
	}
}

func tryPut(addr, key, val string) error {
	req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/v1/rdds/e2e/keys/"+key, strings.NewReader(val))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("PUT %s via %s: %d %s", key, addr, resp.StatusCode, b)
	}
	return nil
}

func tryGet(addr, key, want string) (string, error) {
	resp, err := http.Get("http://" + addr + "/v1/rdds/e2e/keys/" + key)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"value":`+want) {
		return "", fmt.Errorf("GET %s via %s: %d %s, want value %s", key, addr, resp.StatusCode, b, want)
	}
	return string(b), nil
}

// peerFlags are the server flags of peer mutual TLS for node id, with a
// certificate from ca.
func peerFlags(t testing.TB, ca *peeridtest.CA, id string) []string {
	f := ca.Node(t, id)
	return []string{"--peer-cert", f.Cert, "--peer-key", f.Key, "--peer-ca", ca.File}
}
