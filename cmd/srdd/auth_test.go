package main

import (
	"bytes"
	"os"
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
