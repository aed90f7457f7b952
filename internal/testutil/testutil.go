// Package testutil holds the helpers that tests of several packages share:
// free loopback addresses, waiting for a condition instead of sleeping,
// the Python with pyspark that real-interpreter tests run, loggers that
// write to t.Log, and the goroutines of a load (Workers). It is imported by _test.go files only.
//
// Every helper may be called from any goroutine, except those taking a
// testing.TB that fail the test, which must be called from the test's
// own goroutine (t.Fatal's rule).
package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/srdd/srdd/internal/netutil"
)

// FreeAddr reserves a loopback port and returns "127.0.0.1:PORT" with the
// listener closed again, so a node can bind it (and restart on the same
// address, which other members remember). Another process may take the
// port in between; tests accept that small race.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(FreePort(t))
}

// FreePort is FreeAddr's port number (netutil.FreePort).
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := netutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// WaitInterval is how often WaitFor checks its condition.
const WaitInterval = 50 * time.Millisecond

// WaitFor polls cond every WaitInterval until it is true, returns an
// error, or timeout passes.
func WaitFor(timeout time.Duration, cond func() (bool, error)) error {
	return Poll(timeout, WaitInterval, cond)
}

// Poll polls cond every interval until it is true (nil), returns an error
// (that error), or timeout passes (an error naming the timeout). cond is
// checked at least once, and once more after the deadline.
func Poll(timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met within %s", timeout)
		}
		time.Sleep(interval)
	}
}

// RepoRoot returns the repository's root: the nearest directory above the
// test's working directory (its package) that holds go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// TierEnv selects the test tier: "fast" runs only tests that need no
// Spark (README, "Tests").
const TierEnv = "SRDD_TEST_TIER"

// Python returns the Python with pyspark that real-interpreter tests use:
// $SRDD_TEST_PYTHON, else the repository's .venv/bin/python, which `make
// test` prepares. A missing one fails the test: these tests exist to run
// the real thing (docs/ARCHITECTURE.md invariant 8). In the fast tier
// (SRDD_TEST_TIER=fast, `make test-fast`) sessions run on the fake
// interpreter and no test runs this Python: it is then "python3", unchecked.
func Python(t testing.TB) string {
	t.Helper()
	if os.Getenv(TierEnv) == "fast" {
		return "python3"
	}
	if p := os.Getenv("SRDD_TEST_PYTHON"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("SRDD_TEST_PYTHON=%s is not an executable: %v", p, err)
		}
		return p
	}
	p := filepath.Join(RepoRoot(t), ".venv", "bin", "python")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no Python with pyspark at %s; run the tests with `make test`", p)
	}
	return p
}

// Logger returns an hclog logger at level that writes to t.Log, so a
// test's logs show only when it fails (or with -v). It must not be used
// after the test ends: t.Log then panics.
func Logger(t testing.TB, level hclog.Level) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Output: logWriter{t}, Level: level})
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
