package node

import (
	"bufio"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/srdd/srdd/internal/testutil"
)

// Slow clients (issue 25): before authentication a body is not read; after
// it, the body must arrive within --read-timeout; past --max-conns a new
// connection gets a fast 503. No session: no interpreter starts.
func TestSlowClients(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users.json")
	tok := testutil.WriteUsers(t, users, map[string][]string{"ana": {"admin"}}, nil)["ana"]
	cfg := testConfig(t, filepath.Join(dir, "data"))
	// 3 s: long enough that the held connections below are not timed out
	// on a loaded machine before the one over the cap arrives.
	cfg.AuthFile, cfg.ReadTimeout, cfg.MaxConns = users, 3*time.Second, 6
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	addr := n.HTTPAddr()

	// Connections past --max-conns get a fast 503 (first, while no earlier
	// connection can still hold a worker). Each held connection
	// first completes a keep-alive request, so the server has surely taken
	// it and keeps a worker on it. The one over the cap sends nothing: the
	// server answers 503 on accept and closes, and a request still unread
	// there would turn that close into a reset that can swallow the 503.
	get := func(c net.Conn, br *bufio.Reader) (string, error) {
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")); err != nil {
			return "", err
		}
		line, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		for { // the rest of the head; the body is left unread (no connection reads a second answer)
			h, err := br.ReadString('\n')
			if err != nil {
				return "", err
			}
			if h == "\r\n" {
				break
			}
		}
		return strings.TrimSpace(line), nil
	}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := 0; i < cfg.MaxConns; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if line, err := get(c, bufio.NewReader(c)); err != nil || !strings.Contains(line, "200") {
			t.Fatalf("held connection %d: %q %v", i, line, err)
		}
	}
	over := func() (string, error) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		return bufio.NewReader(c).ReadString('\n')
	}
	began := time.Now()
	if line, err := over(); err != nil || !strings.Contains(line, "503") || time.Since(began) > 3*time.Second {
		t.Errorf("connection over --max-conns: %q %v after %s, want a fast 503", line, err, time.Since(began))
	}
	// Closing the held connections frees their places.
	for _, c := range held {
		c.Close()
	}
	held = nil
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		line, err := get(c, bufio.NewReader(c))
		c.Close()
		if err == nil && strings.Contains(line, "200") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the held connections closed: %q %v", line, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// send writes head and part of a 4 MB body, then stalls; it returns
	// the status line and how long the answer took.
	send := func(head string) (string, time.Duration) {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		began := time.Now()
		if _, err := c.Write([]byte(head + "Content-Type: application/json\r\nContent-Length: 4000000\r\n\r\n" + strings.Repeat("x", 100<<10))); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		return strings.TrimSpace(line), time.Since(began)
	}
	// No credentials: 401 at once, without waiting for the body.
	if line, took := send("PUT /v1/rdds/x/keys/k HTTP/1.1\r\nHost: localhost\r\n"); !strings.Contains(line, "401") || took > 5*time.Second {
		t.Errorf("unauthenticated 4 MB body: %q after %s, want 401 at once", line, took)
	}
	// Credentials, then a body that stalls: 408 after the read timeout.
	line, took := send("PUT /v1/rdds/x/keys/k HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " + tok + "\r\n")
	if !strings.Contains(line, "408") || took < 1500*time.Millisecond || took > 15*time.Second {
		t.Errorf("authenticated stalled body: %q after %s, want 408 after about 3 s", line, took)
	}
}
