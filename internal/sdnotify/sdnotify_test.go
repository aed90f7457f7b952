package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

func TestNotifySendsToTheSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	sent, err := Ready()
	if err != nil || !sent {
		t.Fatalf("Ready() = %v, %v; want true, nil", sent, err)
	}
	buf := make([]byte, 64)
	_ = ln.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := ln.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:n]); got != "READY=1" {
		t.Fatalf("systemd got %q, want READY=1", got)
	}
}

func TestNotifyWithoutSocketIsANoOp(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := Ready(); sent || err != nil {
		t.Fatalf("Ready() = %v, %v; want false, nil", sent, err)
	}
}

func TestNotifyToAMissingSocketFails(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent.sock"))
	if sent, err := Ready(); sent || err == nil {
		t.Fatalf("Ready() = %v, %v; want false and an error", sent, err)
	}
}
