package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/srdd/srdd/internal/testutil"
)

// TestBinaryServesAndStopsCleanly runs the real binary as a user would:
// start it, create a session, use the CLI, press Ctrl-C (SIGINT), and check
// that no interpreter or JVM of that node is left behind.
func TestBinaryServesAndStopsCleanly(t *testing.T) {
	spark(t)
	python := testutil.Python(t)
	bin := buildSrdd(t)
	data := filepath.Join(t.TempDir(), "data")
	srv, addr := startSrdd(t, bin, "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
		"--data-dir", data, "--python", python, "--spark-master", "local[1]")
	base := "http://" + addr

	postJSON(t, base+"/sessions", `{"kind":"pyspark"}`, http.StatusCreated)
	postJSON(t, base+"/v1/rdds", `{"name":"cities","session":0}`, http.StatusCreated)
	cli := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append([]string{"--addr", addr}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	// set waits for the starting session (bounded) instead of failing.
	if out, err := cli("set", "cities", "par", `{"name":"Paris"}`); err != nil {
		t.Fatalf("srdd set: %v %s", err, out)
	}
	if out, err := cli("set", "cities", "lon", "London"); err != nil {
		t.Fatalf("srdd set (plain string): %v %s", err, out)
	}
	if out, err := cli("get", "cities", "par"); err != nil || out != `{"name":"Paris"}` {
		t.Fatalf("srdd get = %q, %v", out, err)
	}
	if out, err := cli("get", "cities", "lon"); err != nil || out != `"London"` {
		t.Fatalf("srdd get plain string = %q, %v", out, err)
	}
	if out, err := cli("get", "cities", "nope"); err == nil || !strings.Contains(out, "404") {
		t.Fatalf("srdd get of a missing key = %q, %v; want a 404 error", out, err)
	}
	if out, err := cli("rdd", "ls"); err != nil || !strings.Contains(out, "cities") || !strings.Contains(out, "ready") {
		t.Fatalf("srdd rdd ls = %q, %v", out, err)
	}

	marker := "PYTHONPATH=" + filepath.Join(data, "interpreter")
	if n := len(processesWithEnv(marker)); n == 0 {
		t.Fatal("found no interpreter process of this node; the orphan check below would prove nothing")
	}
	if err := srv.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("server exit after Ctrl-C: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("server did not stop within a minute of Ctrl-C")
	}
	if left := processesWithEnv(marker); len(left) > 0 {
		t.Fatalf("processes left after Ctrl-C: %v", left)
	}
}

// srddBin is the binary under test, built once per test process
// (removed by TestMain).
var srddBin struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// buildSrdd returns the binary under test, building it on first use, once
// per `go test` process. Tests must not change the file it returns.
func buildSrdd(t *testing.T) string {
	t.Helper()
	srddBin.once.Do(func() {
		if srddBin.dir, srddBin.err = os.MkdirTemp("", "srdd-bin-"); srddBin.err != nil {
			return
		}
		bin := filepath.Join(srddBin.dir, "srdd")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			srddBin.err = fmt.Errorf("%v\n%s", err, out)
			return
		}
		srddBin.bin = bin
	})
	if srddBin.err != nil {
		t.Fatalf("build: %v", srddBin.err)
	}
	return srddBin.bin
}

// startSrdd starts `srdd server args...` and returns it with the HTTP
// address it announced. The process is killed when the test ends.
func startSrdd(t *testing.T, bin string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	srv := exec.Command(bin, append([]string{"server", "--log-level", "warn"}, args...)...)
	stderr, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Process.Kill()
		_, _ = srv.Process.Wait()
	})
	addrCh := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`serving on https?://(\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrCh <- m[1]
			}
		}
	}()
	select {
	case addr := <-addrCh:
		return srv, addr
	case <-time.After(time.Minute):
		t.Fatal("server did not announce its address")
	}
	return nil, ""
}

// processesWithEnv lists pids whose environment contains marker (an
// interpreter and the JVM it launched both inherit it).
func processesWithEnv(marker string) []string {
	var out []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if bytes.HasPrefix(kv, []byte(marker)) {
				out = append(out, filepath.Base(d))
				break
			}
		}
	}
	return out
}
