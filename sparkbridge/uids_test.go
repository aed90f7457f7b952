package sparkbridge

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestParseUIDRange(t *testing.T) {
	if os.Geteuid() == 0 {
		if _, err := NewUIDPool(61190, 61199, 0); err == nil || !strings.Contains(err.Error(), "useradd") {
			t.Errorf("a range of uids without accounts: %v, want an error saying how to create them", err)
		}
	}
	if f, l, err := ParseUIDRange("100000-100999"); err != nil || f != 100000 || l != 100999 {
		t.Fatalf("ParseUIDRange = %d, %d, %v", f, l, err)
	}
	for _, bad := range []string{"", "5", "0-10", "10-5", "a-b", "1-9999999", "1000-5096"} {
		if _, _, err := ParseUIDRange(bad); err == nil {
			t.Errorf("ParseUIDRange(%q) accepted", bad)
		}
	}
}

// A pool never hands out a uid that is taken or that a process runs as,
// says so when none is left, and takes a uid back only once nothing runs
// as it and its files are root's.
func TestUIDPool(t *testing.T) {
	p := &UIDPool{First: 61100, Last: 61102, GID: 61100, next: 61100, taken: map[uint32]bool{}}
	var mu sync.Mutex
	busy := map[uint32]bool{61101: true}
	setBusy := func(uid uint32, b bool) { mu.Lock(); busy[uid] = b; mu.Unlock() }
	p.running = func(uid uint32) bool { mu.Lock(); defer mu.Unlock(); return busy[uid] }
	a, err := p.Acquire()
	if err != nil || a.UID != 61100 || a.GID != 61100 {
		t.Fatalf("first Acquire = %+v, %v", a, err)
	}
	b, err := p.Acquire()
	if err != nil || b.UID != 61102 {
		t.Fatalf("second Acquire = %+v, %v (61101 has a process)", b, err)
	}
	if _, err := p.Acquire(); !errors.Is(err, ErrNoUID) {
		t.Fatalf("third Acquire: %v, want ErrNoUID", err)
	}
	setBusy(61102, true) // b's process outlives its session for a while
	p.Release(b)
	time.Sleep(200 * time.Millisecond)
	if !p.Held(61102) {
		t.Fatal("a uid went back while a process still ran as it")
	}
	setBusy(61102, false)
	deadline := time.Now().Add(10 * time.Second)
	for p.Held(61102) {
		if time.Now().After(deadline) {
			t.Fatal("the uid never went back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c, err := p.Acquire(); err != nil || c.UID != 61102 {
		t.Fatalf("Acquire after Release = %+v, %v", c, err)
	}
}

// Files of a range's uids under the reclaim dirs are root's again at
// start and when a uid goes back; others' files are left alone.
func TestUIDPoolGivesFilesBack(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root; CI runs as root")
	}
	dir := t.TempDir()
	mine, other := filepath.Join(dir, "a", "mine"), filepath.Join(dir, "other")
	if err := os.MkdirAll(filepath.Dir(mine), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{mine, other} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.Lchown(filepath.Dir(mine), 61105, 61105)
	_ = os.Lchown(mine, 61105, 61105)
	_ = os.Lchown(other, 62000, 62000)
	p := &UIDPool{First: 61100, Last: 61110, GID: 61100, next: 61100, taken: map[uint32]bool{}, running: uidRunning}
	if err := p.SetReclaim(dir); err != nil {
		t.Fatal(err)
	}
	owner := func(f string) uint32 {
		var st syscall.Stat_t
		if err := syscall.Lstat(f, &st); err != nil {
			t.Fatal(err)
		}
		return st.Uid
	}
	if owner(mine) != 0 || owner(filepath.Dir(mine)) != 0 {
		t.Error("a file of the range's uid is not root's after SetReclaim")
	}
	if owner(other) != 62000 {
		t.Error("a file of a uid outside the range was taken")
	}
}
