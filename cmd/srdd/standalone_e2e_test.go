package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	srddclient "github.com/srdd/srdd/client/go"
	"github.com/srdd/srdd/internal/netutil"
	"github.com/srdd/srdd/internal/testutil"
)

// startSparkDaemon runs pyspark's own bin/spark-class CLASS args... in its
// own process group until the test ends, and waits for a line containing
// ready.
func startSparkDaemon(t *testing.T, sparkClass, ready, class string, args ...string) {
	t.Helper()
	cmd := exec.Command(sparkClass, append([]string{class}, args...)...)
	cmd.Env = append(cmd.Environ(), "SPARK_DAEMON_MEMORY=256m", "SPARK_LOCAL_IP=127.0.0.1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	found := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		seen := false
		for sc.Scan() {
			if !seen && strings.Contains(sc.Text(), ready) {
				seen = true
				close(found)
			}
		}
	}()
	select {
	case <-found:
	case <-time.After(3 * time.Minute):
		t.Fatalf("%s did not log %q within 3 minutes", class, ready)
	}
}

// TestSharedRDDOnStandaloneSpark runs a node whose session uses a real
// standalone Spark cluster (a master and one worker started from pyspark's
// spark-class on 127.0.0.1), and checks set, get and multiget on a shared
// RDD, also after its data was compacted into a base held by the cluster's
// executor (issue 16).
func TestSharedRDDOnStandaloneSpark(t *testing.T) {
	spark(t)
	python := testutil.Python(t)
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(filepath.Dir(python)), "lib", "python3*", "site-packages", "pyspark", "bin", "spark-class"))
	if len(matches) == 0 {
		t.Fatalf("no pyspark/bin/spark-class next to %s", python)
	}
	port, err := netutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	master := fmt.Sprintf("spark://127.0.0.1:%d", port)
	startSparkDaemon(t, matches[0], "I have been elected leader", "org.apache.spark.deploy.master.Master",
		"--host", "127.0.0.1", "--port", strconv.Itoa(port), "--webui-port", "0")
	startSparkDaemon(t, matches[0], "Successfully registered with master", "org.apache.spark.deploy.worker.Worker",
		"--host", "127.0.0.1", "--cores", "1", "--memory", "768m", "--webui-port", "0",
		"--work-dir", filepath.Join(t.TempDir(), "work"), master)

	bin := buildSrdd(t)
	_, addr := startSrdd(t, bin, "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
		"--data-dir", filepath.Join(t.TempDir(), "data"), "--python", python, "--spark-master", master,
		"--spark-conf", "spark.executor.memory=512m", "--spark-conf", "spark.driver.memory=512m")
	base := "http://" + addr
	postJSON(t, base+"/sessions", `{"kind":"pyspark"}`, http.StatusCreated)
	postJSON(t, base+"/v1/rdds", `{"name":"e2e","session":0}`, http.StatusCreated)
	// The session's driver registers with the master and gets an executor
	// from the worker: wait for it (a loaded machine takes minutes).
	waitIdle := time.Now().Add(6 * time.Minute)
	for state := ""; state != "idle"; {
		if time.Now().After(waitIdle) {
			t.Fatalf("session 0 is %q after 6 minutes", state)
		}
		resp, err := http.Get(base + "/sessions/0/state")
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			State string `json:"state"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if state = st.State; state == "error" || state == "dead" {
			t.Fatalf("session 0 is %s", state)
		}
		time.Sleep(500 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cl := srddclient.New(addr)
	want := map[string]json.RawMessage{}
	for i := 0; i < 500; i++ {
		want[fmt.Sprintf("k%03d", i)] = json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))
	}
	if n, err := cl.SetMany(ctx, "e2e", want); err != nil || n != len(want) {
		t.Fatalf("set many = %d, %v", n, err)
	}
	check := func(stage string) {
		t.Helper()
		keys := []string{"absent"}
		for k := range want {
			keys = append(keys, k)
		}
		got, missing, err := cl.GetMany(ctx, "e2e", keys)
		if err != nil {
			t.Fatalf("%s: multiget: %v", stage, err)
		}
		if len(missing) != 1 || missing[0] != "absent" || len(got) != len(want) {
			t.Fatalf("%s: multiget: %d values, missing %v", stage, len(got), missing)
		}
		for k, v := range want {
			if string(got[k]) != string(v) {
				t.Fatalf("%s: %s = %s, want %s", stage, k, got[k], v)
			}
		}
		v, err := cl.Get(ctx, "e2e", "k042")
		if err != nil || string(v) != string(want["k042"]) {
			t.Fatalf("%s: get k042 = %s, %v", stage, v, err)
		}
	}
	check("pending writes")
	// Move the data into a base built by the cluster's executor; the
	// statement waits for the compaction.
	runStatement(t, base, `e2e.compact(); print(e2e.count(), e2e.rdd.getNumPartitions() > 0)`, "500 True")
	check("compacted")
	want["k007"] = json.RawMessage(`"changed"`)
	if err := cl.Set(ctx, "e2e", "k007", want["k007"]); err != nil {
		t.Fatal(err)
	}
	check("overwritten")
	runStatement(t, base, `print(sorted(e2e.df.filter("key < 'k003'").collect()))`,
		`[Row(key='k000', value='{"i":0}'), Row(key='k001', value='{"i":1}'), Row(key='k002', value='{"i":2}')]`)
}

// runStatement runs code in session 0 and checks its text output.
func runStatement(t *testing.T, base, code, want string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"code": code})
	var st struct {
		ID     int    `json:"id"`
		State  string `json:"state"`
		Output *struct {
			Status string            `json:"status"`
			Data   map[string]string `json:"data"`
			Evalue string            `json:"evalue"`
		} `json:"output"`
	}
	if err := json.Unmarshal(postJSON(t, base+"/sessions/0/statements", string(body), http.StatusCreated), &st); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for st.State != "available" && st.State != "error" && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		resp, err := http.Get(fmt.Sprintf("%s/sessions/0/statements/%d", base, st.ID))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatalf("statement: %v: %s", err, b)
		}
	}
	if st.Output == nil || st.Output.Status != "ok" {
		t.Fatalf("statement %q: state %s, output %+v", code, st.State, st.Output)
	}
	if got := st.Output.Data["text/plain"]; got != want {
		t.Fatalf("statement %q printed %q, want %q", code, got, want)
	}
}
