package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain gives every `srdd server` a test starts the test Python
// (SRDD_TEST_PYTHON, else the checkout's .venv) through SRDD_PYTHON, the
// default of --python: the server's preflight refuses a Python without
// pyspark, and some tests start servers without --python. A test that
// wants the bare default sets its command's environment itself.
func TestMain(m *testing.M) {
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
	os.Exit(m.Run())
}
