package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestDiskGuard(t *testing.T) {
	dir := t.TempDir()
	if err := (*DiskGuard)(nil).Check(); err != nil {
		t.Fatalf("a nil guard refused: %v", err)
	}
	if g := NewDiskGuard(0, dir); g != nil {
		t.Fatal("reserve 0 made a guard")
	}
	if err := NewDiskGuard(1, dir).Check(); err != nil {
		t.Fatalf("1 byte reserve: %v", err)
	}
	// A directory not made yet is judged by its parent's filesystem.
	missing := filepath.Join(dir, "not", "yet")
	err := NewDiskGuard(1<<62, missing).Check()
	if !errors.Is(err, ErrInsufficientStorage) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("an impossible reserve: %v", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatal("the guard made the directory")
	}
}

func TestNoSpace(t *testing.T) {
	enospc := &os.PathError{Op: "write", Path: "raft.db", Err: syscall.ENOSPC}
	if err := noSpace(fmt.Errorf("commit: %w", enospc)); !errors.Is(err, ErrInsufficientStorage) || !strings.Contains(err.Error(), "raft.db") {
		t.Fatalf("ENOSPC: %v", err)
	}
	other := errors.New("other")
	if err := noSpace(other); err != other {
		t.Fatalf("another error changed: %v", err)
	}
	if noSpace(nil) != nil {
		t.Fatal("nil changed")
	}
}
