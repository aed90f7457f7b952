package testutil

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestFreeAddrCanBeBound(t *testing.T) {
	addr := FreeAddr(t)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("FreeAddr = %q, want a loopback address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("cannot bind the free address %s: %v", addr, err)
	}
	ln.Close()
	if p := FreePort(t); p <= 0 || p > 65535 {
		t.Fatalf("FreePort = %d", p)
	}
}

func TestPoll(t *testing.T) {
	n := 0
	if err := Poll(time.Second, time.Millisecond, func() (bool, error) { n++; return n == 3, nil }); err != nil || n != 3 {
		t.Fatalf("Poll = %v after %d checks, want nil after 3", err, n)
	}
	boom := errors.New("boom")
	if err := WaitFor(time.Second, func() (bool, error) { return false, boom }); !errors.Is(err, boom) {
		t.Fatalf("WaitFor = %v, want the condition's error", err)
	}
	began := time.Now()
	if err := Poll(30*time.Millisecond, 5*time.Millisecond, func() (bool, error) { return false, nil }); err == nil {
		t.Fatal("Poll of a condition never met returned nil")
	}
	if d := time.Since(began); d < 30*time.Millisecond {
		t.Fatalf("Poll gave up after %s, before its timeout", d)
	}
}

func TestRepoRootAndPython(t *testing.T) {
	root := RepoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("RepoRoot = %s, which has no go.mod", root)
	}
	if want := filepath.Join(root, "internal", "testutil"); mustGetwd(t) != want {
		t.Fatalf("RepoRoot = %s, want the directory above internal/testutil", root)
	}
	t.Setenv(TierEnv, "")
	t.Setenv("SRDD_TEST_PYTHON", os.Args[0]) // any executable will do
	if got := Python(t); got != os.Args[0] {
		t.Fatalf("Python = %q, want $SRDD_TEST_PYTHON", got)
	}
	// The fast tier runs no Python: nothing is looked up.
	t.Setenv(TierEnv, "fast")
	t.Setenv("SRDD_TEST_PYTHON", "/nonexistent")
	if got := Python(t); got != "python3" {
		t.Fatalf("Python in the fast tier = %q, want python3", got)
	}
}

func mustGetwd(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

func TestLoggerWritesToTheTest(t *testing.T) {
	var got []string
	w := logWriter{recorder{t, &got}}
	Logger(t, hclog.Info).Info("not captured") // goes to t.Log
	hclog.New(&hclog.LoggerOptions{Output: w}).Info("hello")
	if len(got) != 1 || !strings.Contains(got[0], "hello") {
		t.Fatalf("logged %q", got)
	}
}

// recorder is a testing.TB whose Log is recorded.
type recorder struct {
	testing.TB
	lines *[]string
}

func (r recorder) Log(args ...any) {
	for _, a := range args {
		*r.lines = append(*r.lines, a.(string))
	}
}

func TestWorkersRepeatUntilHalt(t *testing.T) {
	var w Workers
	var mu sync.Mutex
	seen := map[int][]int{}
	for g := 0; g < 3; g++ {
		w.Repeat(func(i int) {
			mu.Lock()
			seen[g] = append(seen[g], i)
			mu.Unlock()
			time.Sleep(time.Millisecond)
		})
	}
	if err := WaitFor(10*time.Second, func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return len(seen[0]) > 2 && len(seen[1]) > 2 && len(seen[2]) > 2, nil
	}); err != nil {
		t.Fatal(err)
	}
	w.Halt()
	mu.Lock()
	after := len(seen[0]) + len(seen[1]) + len(seen[2])
	for g, is := range seen {
		for j, i := range is {
			if i != j {
				t.Fatalf("goroutine %d: step %d was called with %d", g, j, i)
			}
		}
	}
	mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if n := len(seen[0]) + len(seen[1]) + len(seen[2]); n != after {
		t.Fatalf("%d steps ran after Halt returned", n-after)
	}
	var idle Workers
	idle.Halt() // no goroutine: returns at once
}
