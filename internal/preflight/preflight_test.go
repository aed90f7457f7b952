package preflight

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDirCheck(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if c := dirCheck("data-dir", file, true); c.OK || !strings.Contains(c.Detail, "not a directory") || c.Fix == "" {
		t.Fatalf("a file: %+v", c)
	}
	if c := dirCheck("file-root", filepath.Join(file, "sub"), false); c.OK {
		t.Fatalf("under a file: %+v", c)
	}
	missing := filepath.Join(dir, "a", "b")
	if c := dirCheck("data-dir", missing, false); !c.OK || !strings.Contains(c.Detail, "will be created") {
		t.Fatalf("a missing dir, look only: %+v", c)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("a look-only check created the dir")
	}
	if c := dirCheck("data-dir", missing, true); !c.OK {
		t.Fatalf("a missing dir, create: %+v", c)
	}
	if fi, err := os.Stat(missing); err != nil || !fi.IsDir() {
		t.Fatalf("not created: %v", err)
	}
}

func TestMissingPythonAndJava(t *testing.T) {
	if c := Python(filepath.Join(t.TempDir(), "no-python")); c.OK || !strings.Contains(c.Fix, "make venv") {
		t.Fatalf("a missing python: %+v", c)
	}
	t.Setenv("JAVA_HOME", filepath.Join(t.TempDir(), "no-jdk"))
	if c := Java(); c.OK || !strings.Contains(c.Fix, "openjdk-17-jre-headless") {
		t.Fatalf("a missing java: %+v", c)
	}
	err := Err([]Check{{Name: "java", Detail: "no Java", Fix: "install it"}, {Name: "python", OK: true}})
	if err == nil || !strings.Contains(err.Error(), "java: no Java (fix: install it)") || strings.Contains(err.Error(), "python") {
		t.Fatalf("Err = %v", err)
	}
}
