package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/srdd/srdd/auth"
)

func runAuth(t *testing.T, args ...string) (string, error) {
	t.Helper()
	c := authCmd()
	var out bytes.Buffer
	c.SetOut(&out)
	c.SetErr(&bytes.Buffer{})
	c.SetArgs(args)
	err := c.Execute()
	return strings.TrimSpace(out.String()), err
}

func TestAuthCLI(t *testing.T) {
	file := filepath.Join(t.TempDir(), "users.json")
	tok, err := runAuth(t, "add", "--file", file, "--name", "ci", "--role", "read:*", "--role", "write:cities")
	if err != nil || len(tok) != 43 {
		t.Fatalf("add printed %q, %v; want a generated token", tok, err)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("users file: %v, %v; want mode 0600", st, err)
	}
	if out, err := runAuth(t, "add", "--file", file, "--name", "ana", "--role", "code", "--password", "pw"); err != nil || out != "" {
		t.Fatalf("add with a password printed %q, %v; want nothing", out, err)
	}
	if _, err := runAuth(t, "add", "--file", file, "--name", "x", "--role", "root"); err == nil {
		t.Fatal("an unknown role is accepted")
	}
	a, err := auth.New(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := a.Token(tok); !ok || p.Name != "ci" || !p.Can(auth.PermWrite, "cities") || p.Can(auth.PermWrite, "other") {
		t.Fatalf("token of ci: %+v %v", p, ok)
	}
	out, err := runAuth(t, "ls", "--file", file)
	if err != nil || !strings.Contains(out, "ana") || !strings.Contains(out, "read:*,write:cities") || strings.Contains(out, tok) {
		t.Fatalf("ls = %q, %v", out, err)
	}
	if _, err := runAuth(t, "rm", "--file", file, "--name", "ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := runAuth(t, "rm", "--file", file, "--name", "ci"); err == nil {
		t.Fatal("removing a missing user succeeds")
	}
	if out, _ := runAuth(t, "ls", "--file", file); strings.Contains(out, "ci ") {
		t.Fatalf("ls after rm = %q", out)
	}
}

// TestProtectedMode runs the real binary: without --auth-file it refuses
// to bind every interface, and says why; with --insecure it serves, and
// warns.
func TestProtectedMode(t *testing.T) {
	bin := buildSrdd(t)
	dir := t.TempDir()
	out, err := exec.Command(bin, "server", "--http-addr", "0.0.0.0:0", "--raft-addr", "127.0.0.1:0",
		"--data-dir", filepath.Join(dir, "refused")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "protected mode") || !strings.Contains(string(out), "--auth-file") {
		t.Fatalf("0.0.0.0 without auth: err %v, output %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "refused")); err == nil {
		t.Fatal("a refused start created the data dir")
	}

	srv := exec.Command(bin, "server", "--http-addr", "0.0.0.0:0", "--raft-addr", "127.0.0.1:0",
		"--data-dir", filepath.Join(dir, "insecure"), "--insecure")
	stderr, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = srv.Process.Kill()
		_, _ = srv.Process.Wait()
	}()
	sc := bufio.NewScanner(stderr)
	warned := false
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "INSECURE") {
			warned = true
		}
		if strings.Contains(line, "serving on") {
			break
		}
	}
	if !warned {
		t.Fatal("--insecure on 0.0.0.0 served without a warning")
	}
}
