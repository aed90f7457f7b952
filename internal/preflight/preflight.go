// Package preflight checks, before a node serves, that it can run what it
// promises: an interpreter Python with the pinned pyspark and msgpack,
// Java 17 or newer for Spark, a writable data dir and checkpoint
// location, and file roots that exist or can be created
// (docs/ARCHITECTURE.md, "Preflight"). `srdd server` refuses to start
// (exit 2) when a check fails; `srdd doctor` prints every check.
package preflight

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/srdd/srdd/internal/fileroot"
	"github.com/srdd/srdd/sparkbridge"
)

// Config is what the checks look at: the node's flags.
type Config struct {
	Python        string   // --python
	DataDir       string   // --data-dir
	CheckpointURI string   // --checkpoint-uri ("": DATA-DIR/checkpoints)
	FileRoots     []string // --file-root (none: DATA-DIR/files)
	MemoryOnly    bool     // --memory-only: no checkpoints
	// RunAs, if set, is whom interpreters run as (--interpreter-uids'
	// first uid, or --interpreter-user): --python must import pyspark as
	// that account, not only as the node (a Python under /root will not
	// do). RunAsName names it in messages.
	RunAs     *syscall.Credential
	RunAsName string
	// Create makes missing directories (srdd server); without it the
	// checks only look (srdd doctor).
	Create bool
}

// Check is the outcome of one check.
type Check struct {
	Name   string // python, java, data-dir, checkpoints, file-root
	OK     bool
	Detail string // what was found, or what is missing
	Fix    string // how to fix it (failed checks)
}

// String is the check as one line, as srdd doctor prints it.
func (c Check) String() string {
	if c.OK {
		return fmt.Sprintf("ok    %-11s %s", c.Name, c.Detail)
	}
	return fmt.Sprintf("FAIL  %-11s %s; fix: %s", c.Name, c.Detail, c.Fix)
}

// timeout bounds each external command (the Python import, java -version).
const timeout = 60 * time.Second

// Run runs every check, in a fixed order.
func Run(cfg Config) []Check {
	// The two subprocesses run side by side: the check stays under a
	// second on a small machine.
	var py Check
	done := make(chan struct{})
	go func() { py = PythonAs(cfg.Python, cfg.RunAs, cfg.RunAsName); close(done) }()
	java := Java()
	<-done
	checks := []Check{py, java}
	checks = append(checks, dirCheck("data-dir", cfg.DataDir, cfg.Create))
	if !cfg.MemoryOnly {
		uri := cfg.CheckpointURI
		if uri == "" {
			uri = filepath.Join(cfg.DataDir, "checkpoints")
		}
		if _, p, local := fileroot.Split(uri); local && p != "" {
			checks = append(checks, dirCheck("checkpoints", p, cfg.Create))
		} else {
			checks = append(checks, Check{Name: "checkpoints", OK: true, Detail: uri + " (remote: Spark checks it when it writes)"})
		}
	}
	roots := cfg.FileRoots
	if len(roots) == 0 {
		roots = []string{filepath.Join(cfg.DataDir, "files")}
	}
	for _, r := range roots {
		if _, p, local := fileroot.Split(r); local && p != "" {
			checks = append(checks, dirCheck("file-root", p, cfg.Create))
		}
	}
	return checks
}

// Err is nil when every check passed; otherwise one message that names
// everything missing and how to fix it.
func Err(checks []Check) error {
	var bad []string
	for _, c := range checks {
		if !c.OK {
			bad = append(bad, fmt.Sprintf("%s: %s (fix: %s)", c.Name, c.Detail, c.Fix))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%w: this node cannot run interpreters or keep data:\n  %s\n(srdd doctor runs these checks)",
		ErrFailed, strings.Join(bad, "\n  "))
}

// ErrFailed: a check failed.
var ErrFailed = errors.New("preflight failed")

// probe prints what the interpreter imports need, as JSON.
const probe = `import json, sys
out = {"python": sys.version.split()[0]}
for name in ("pyspark", "msgpack"):
    try:
        mod = __import__(name)
        v = getattr(mod, "__version__", None) or ".".join(str(p) for p in getattr(mod, "version", ()))
        out[name] = v or "?"
    except Exception as e:
        out[name + "_error"] = "%s: %s" % (type(e).__name__, e)
print(json.dumps(out))
`

const fixPython = "run `make venv` in the srdd checkout and pass --python .venv/bin/python (or install the pinned packages: pip install -r sparkbridge/python/requirements.txt)"

// fixPythonAs is the fix when the interpreters' account cannot run it.
const fixPythonAs = "give --python a Python every interpreter uid can run, outside /root and any 0700 home: e.g. python3 -m venv /opt/srdd/venv (dirs 0755) with the pinned pyspark and msgpack, then --python /opt/srdd/venv/bin/python"

// Python checks that python imports the pinned pyspark and msgpack.
func Python(python string) Check { return PythonAs(python, nil, "") }

// PythonAs is Python, run as the interpreters' account when cred is set.
func PythonAs(python string, cred *syscall.Credential, as string) Check {
	c := Check{Name: "python", Fix: fixPython}
	if cred != nil {
		c.Fix = fixPythonAs
	}
	pinned := sparkbridge.PinnedPySpark()
	path, err := exec.LookPath(python)
	if err != nil {
		c.Detail = fmt.Sprintf("--python %s: not found (%v)", python, err)
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-c", probe)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	who := ""
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = "/"
		who = " as " + as
	}
	out, err := cmd.Output()
	if err != nil {
		c.Detail = fmt.Sprintf("--python %s cannot run%s: %v", path, who, err)
		return c
	}
	var got map[string]string
	if err := json.Unmarshal(out, &got); err != nil {
		c.Detail = fmt.Sprintf("--python %s printed %q, not its versions", path, strings.TrimSpace(string(out)))
		return c
	}
	var missing []string
	for _, m := range []string{"pyspark", "msgpack"} {
		if e, bad := got[m+"_error"]; bad {
			missing = append(missing, fmt.Sprintf("cannot import %s (%s)", m, e))
		}
	}
	if len(missing) > 0 {
		c.Detail = fmt.Sprintf("--python %s (Python %s) %s%s; srdd needs pyspark %s", path, got["python"], strings.Join(missing, ", "), who, pinned)
		return c
	}
	if pinned != "" && majorMinor(got["pyspark"]) != majorMinor(pinned) {
		c.Detail = fmt.Sprintf("--python %s has pyspark %s; srdd needs pyspark %s", path, got["pyspark"], pinned)
		return c
	}
	c.OK = true
	c.Detail = fmt.Sprintf("%s (Python %s, pyspark %s, msgpack %s)", path, got["python"], got["pyspark"], got["msgpack"])
	return c
}

func majorMinor(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	return parts[0] + "." + parts[1]
}

const fixJava = "install Java 17 or newer (Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless) or set JAVA_HOME to one"

var javaVersion = regexp.MustCompile(`version "(\d+)(?:\.(\d+))?`)

// Java checks for Java 17 or newer where PySpark looks: $JAVA_HOME/bin/java,
// else java on PATH.
func Java() Check {
	c := Check{Name: "java", Fix: fixJava}
	java := "java"
	if home := os.Getenv("JAVA_HOME"); home != "" {
		java = filepath.Join(home, "bin", "java")
	}
	path, err := exec.LookPath(java)
	if err != nil {
		c.Detail = fmt.Sprintf("no Java: %s not found", java)
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-version").CombinedOutput()
	if err != nil {
		c.Detail = fmt.Sprintf("%s -version failed: %v", path, err)
		return c
	}
	m := javaVersion.FindStringSubmatch(string(out))
	if m == nil {
		c.Detail = fmt.Sprintf("cannot read the version of %s: %q", path, firstLine(string(out)))
		return c
	}
	major, _ := strconv.Atoi(m[1])
	if major == 1 && m[2] != "" { // 1.8 is Java 8
		major, _ = strconv.Atoi(m[2])
	}
	if major < 17 {
		c.Detail = fmt.Sprintf("%s is Java %d (%s); Spark 4 needs 17 or newer", path, major, firstLine(string(out)))
		return c
	}
	c.OK = true
	c.Detail = fmt.Sprintf("%s (%s)", path, firstLine(string(out)))
	return c
}

// firstLine is the first line of a command's output, past the lines a
// JVM prints about JAVA_TOOL_OPTIONS or JDK_JAVA_OPTIONS in its
// environment.
func firstLine(s string) string {
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "Picked up ") && !strings.HasPrefix(line, "NOTE: Picked up ") {
			return line
		}
	}
	return ""
}

// dirCheck checks that dir is a writable directory, or (create) makes it
// 0700, or (!create) that it could be made: its nearest existing parent
// is a writable directory.
func dirCheck(name, dir string, create bool) Check {
	fix := "pass a directory this user can write (--" + name + ")"
	switch name {
	case "checkpoints":
		fix = "pass a writable --checkpoint-uri, or fix the permissions of the directory"
	case "file-root":
		fix = "pass a --file-root this user can create and write, or fix its permissions"
	case "data-dir":
		fix = "pass a --data-dir this user can write, or fix its permissions"
	}
	c := Check{Name: name, Fix: fix}
	abs, err := filepath.Abs(dir)
	if err != nil {
		c.Detail = fmt.Sprintf("%s: %v", dir, err)
		return c
	}
	target := abs
	fi, err := os.Stat(abs)
	switch {
	case err == nil && !fi.IsDir():
		c.Detail = abs + " is not a directory"
		return c
	case err != nil && !errors.Is(err, os.ErrNotExist):
		c.Detail = fmt.Sprintf("cannot look at %s: %v", abs, err)
		return c
	case err != nil && create:
		if err := os.MkdirAll(abs, 0o700); err != nil {
			c.Detail = fmt.Sprintf("cannot create %s: %v", abs, err)
			return c
		}
	case err != nil:
		// srdd doctor creates nothing: the nearest existing parent must
		// let us create it.
		for target = filepath.Dir(target); ; target = filepath.Dir(target) {
			if _, err := os.Stat(target); err == nil || target == filepath.Dir(target) {
				break
			}
		}
	}
	f, err := os.CreateTemp(target, ".srdd-preflight-*")
	if err != nil {
		if target != abs {
			c.Detail = fmt.Sprintf("%s does not exist and cannot be created in %s: %v", abs, target, err)
		} else {
			c.Detail = fmt.Sprintf("%s is not writable: %v", abs, err)
		}
		return c
	}
	f.Close()
	_ = os.Remove(f.Name())
	c.OK = true
	c.Detail = abs
	if target != abs {
		c.Detail += " (will be created)"
	}
	return c
}
