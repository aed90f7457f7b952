package fileroot

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestRoots(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "files")
	data := filepath.Join(base, "data")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{root, data, outside, filepath.Join(root, "sub")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "sub"), filepath.Join(outside, "into")); err != nil {
		t.Fatal(err)
	}
	r, err := New([]string{root}, false, data)
	if err != nil {
		t.Fatal(err)
	}
	f := func(p, want string, wantErr error) {
		t.Helper()
		got, err := r.URI(p)
		if !errors.Is(err, wantErr) || (wantErr == nil && got != want) {
			t.Fatalf("URI(%q) = %q, %v; want %q, %v", p, got, err, want, wantErr)
		}
	}
	f(filepath.Join(root, "a.jsonl"), filepath.Join(root, "a.jsonl"), nil)
	f("a.jsonl", filepath.Join(root, "a.jsonl"), nil)
	f(filepath.Join(root, "new/dir/out"), filepath.Join(root, "new/dir/out"), nil)
	f("file://"+filepath.Join(root, "x.jar"), "file:"+filepath.Join(root, "x.jar"), nil)
	f("local:"+filepath.Join(root, "x.jar"), "local:"+filepath.Join(root, "x.jar"), nil)
	f(filepath.Join(outside, "into", "x"), filepath.Join(root, "sub", "x"), nil) // a symlink into a root
	f("/etc/passwd", "", ErrForbidden)
	f("file:///etc/passwd", "", ErrForbidden)
	f(filepath.Join(root, "..", "outside", "x"), "", ErrForbidden)
	f("../outside/x", "", ErrForbidden)
	f(filepath.Join(root, "escape", "x"), "", ErrForbidden)
	f(filepath.Join(root, "escape"), "", ErrForbidden)
	f(filepath.Join(root, "esc*", "x"), "", ErrForbidden)
	f(filepath.Join(root, "a.jsonl")+",/etc/passwd", "", ErrForbidden)
	f(filepath.Join(root, "50%.csv"), filepath.Join(root, "50%.csv"), nil)
	f("sub/a:b", filepath.Join(root, "sub/a:b"), nil)
	f(filepath.Join(data, "raft"), "", ErrForbidden)
	f("http://example.com/evil.jar", "", ErrRemote)
	f("hdfs:///x", "", ErrRemote)
	f("s3a://bucket/x", "", ErrRemote)
	f("file://evil.example.com/x", "", ErrRemote)

	if _, err := r.Replaceable(root); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a root is replaceable: %v", err)
	}
	if _, err := r.Replaceable(filepath.Join(root, "sub")); err != nil {
		t.Fatal(err)
	}
	wide, err := New([]string{base}, false, data, filepath.Join(root, "sub"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{base, data, filepath.Join(data, "raft"), filepath.Join(root, "sub", "x")} {
		if _, err := wide.URI(p); !errors.Is(err, ErrForbidden) {
			t.Fatalf("%s under a root that holds protected dirs: %v", p, err)
		}
	}
	if _, err := wide.URI(filepath.Join(outside, "x")); err != nil {
		t.Fatal(err)
	}
	same, _ := New([]string{data}, false, data)
	if _, err := same.URI(filepath.Join(data, "raft")); !errors.Is(err, ErrForbidden) {
		t.Fatalf("--file-root DATA-DIR reaches the data dir: %v", err)
	}
	inner, _ := New([]string{root}, false, base)
	if _, err := inner.URI(filepath.Join(root, "x")); err != nil {
		t.Fatalf("a root inside a protected dir: %v", err)
	}
	if _, err := New([]string{filepath.Join(base, "missing")}, false); err == nil {
		t.Fatal("a missing root is accepted")
	}
	remote, _ := New([]string{root}, true)
	if got, err := remote.URI("s3a://bucket/x"); err != nil || got != "s3a://bucket/x" {
		t.Fatalf("remote allowed: %q %v", got, err)
	}
	var none Roots
	if _, err := none.URI("/etc/passwd"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("zero Roots: %v", err)
	}
}
