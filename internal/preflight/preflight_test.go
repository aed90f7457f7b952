package preflight

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// With interpreters running as another account (--interpreter-uids,
// --interpreter-user), --python must run as that account: one in a 0700
// dir (as under /root) fails the check, saying so and how to fix it.
func TestPythonAsInterpreterAccount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running the probe as another uid needs root; CI runs as root")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	dir := t.TempDir() // 0700, root's
	link := filepath.Join(dir, "python3")
	if err := os.Symlink(py, link); err != nil {
		t.Fatal(err)
	}
	c := PythonAs(link, &syscall.Credential{Uid: 61999, Gid: 61999, Groups: []uint32{}}, "uid 61999 (--interpreter-uids)")
	if c.OK || !strings.Contains(c.Detail, "as uid 61999") || c.Fix != fixPythonAs {
		t.Fatalf("a Python the interpreters' uid cannot reach: %+v", c)
	}
}

func TestFirstLineSkipsJVMOptionNotes(t *testing.T) {
	out := "Picked up JAVA_TOOL_OPTIONS: -XX:+UseSerialGC\nNOTE: Picked up JDK_JAVA_OPTIONS: -Xss4m\nopenjdk version \"17.0.13\" 2024-10-15\nOpenJDK Runtime Environment\n"
	if got := firstLine(out); got != `openjdk version "17.0.13" 2024-10-15` {
		t.Errorf("firstLine = %q", got)
	}
	if got := firstLine("one line"); got != "one line" {
		t.Errorf("firstLine = %q", got)
	}
}
