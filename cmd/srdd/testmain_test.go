package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/srdd/srdd/internal/testutil"
	"github.com/srdd/srdd/sparkbridge/bridgetest"
)

// tierEnv selects the test tier: "fast" runs no Spark (make test-fast).
const tierEnv = testutil.TierEnv

// onFake runs the servers t starts on the fake interpreter in every tier
// but the robustness runs (SRDD_TEST_TIER=robust: make test-edges), which
// keep real PySpark: for tests about Raft, readiness, placement and the
// durable log that create sessions but run no Spark code.
func onFake(t *testing.T) {
	t.Helper()
	if os.Getenv(tierEnv) != "robust" {
		t.Setenv(testFakeInterpreterEnv, "1")
	}
}

// spark marks a test of the Spark tier (it starts sessions on real
// PySpark): SRDD_TEST_TIER=fast skips it.
func spark(t *testing.T) {
	t.Helper()
	if os.Getenv(tierEnv) == "fast" {
		t.Skip("Spark tier: skipped by SRDD_TEST_TIER=fast (make test-fast)")
	}
}

// TestMain gives every `srdd server` a test starts the test Python
// (SRDD_TEST_PYTHON, else the checkout's .venv) through SRDD_PYTHON, the
// default of --python: the server's preflight refuses a Python without
// pyspark, and some tests start servers without --python. A test that
// wants the bare default sets its command's environment itself.
func TestMain(m *testing.M) {
	bridgetest.MaybeRun()
	if os.Getenv(tierEnv) == "fast" {
		// The fast tier: every server a test starts runs the fake
		// interpreter and needs neither Python nor Java; the Spark
		// tier's tests (spark(t)) are skipped.
		os.Setenv(testFakeInterpreterEnv, "1")
	}
	if os.Getenv("SRDD_PYTHON") == "" {
		p := os.Getenv("SRDD_TEST_PYTHON")
		if p == "" {
			if abs, err := filepath.Abs(filepath.Join("..", "..", ".venv", "bin", "python")); err == nil {
				if _, err := os.Stat(abs); err == nil {
					p = abs
				}
			}
		}
		if p != "" {
			os.Setenv("SRDD_PYTHON", p)
		}
	}
	code := m.Run()
	if srddBin.dir != "" {
		_ = os.RemoveAll(srddBin.dir)
	}
	os.Exit(code)
}
