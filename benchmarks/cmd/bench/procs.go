package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/srdd/srdd/benchmarks/report"
)

// child is a process the suite started; stop kills its process group.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// startChild starts path args in its own process group and waits until a
// line of its output (stdout or stderr) matches ready, returning that line.
func startChild(name string, ready func(string) bool, timeout time.Duration, path string, args ...string) (*child, string, error) {
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	outR, outW := io.Pipe()
	cmd.Stdout, cmd.Stderr = outW, outW
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("cannot start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		outW.Close()
		close(c.done)
	}()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(outR)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := false
		for sc.Scan() {
			if !found && ready(sc.Text()) {
				found = true
				lines <- sc.Text()
			}
			if os.Getenv("BENCH_VERBOSE") != "" {
				fmt.Fprintf(os.Stderr, "[%s] %s\n", name, sc.Text())
			}
		}
		_, _ = io.Copy(io.Discard, outR)
	}()
	select {
	case l := <-lines:
		return c, l, nil
	case <-c.done:
		return nil, "", fmt.Errorf("%s exited before it was ready", name)
	case <-time.After(timeout):
		c.stop()
		return nil, "", fmt.Errorf("%s not ready within %s", name, timeout)
	}
}

// stop asks the group to end (SIGINT, then SIGKILL after 30 s).
func (c *child) stop() {
	if c == nil {
		return
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}

// proc is one process of /proc.
type proc struct {
	pid, ppid int
	cmdline   string
	rssKB     int64
}

func readProcs() map[int]proc {
	out := map[int]proc{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		status, err := os.ReadFile(filepath.Join(d, "status"))
		if err != nil {
			continue
		}
		p := proc{pid: pid}
		for _, line := range strings.Split(string(status), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			switch f[0] {
			case "PPid:":
				p.ppid, _ = strconv.Atoi(f[1])
			case "VmRSS:":
				p.rssKB, _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
		cmd, _ := os.ReadFile(filepath.Join(d, "cmdline"))
		p.cmdline = strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " ")
		out[pid] = p
	}
	return out
}

// interpreterMemory finds the interpreter of session sid under the srdd
// server root and reports the resident memory of its Python driver, its
// JVM, and the JVM's Python workers.
func interpreterMemory(root int, sid int64) (report.Memory, error) {
	procs := readProcs()
	children := map[int][]int{}
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	var under func(pid int) []int
	under = func(pid int) []int {
		var out []int
		for _, c := range children[pid] {
			out = append(out, c)
			out = append(out, under(c)...)
		}
		return out
	}
	var m report.Memory
	driver := 0
	for _, pid := range under(root) {
		p := procs[pid]
		if strings.Contains(p.cmdline, "srdd_interpreter") && strings.Contains(p.cmdline, "--session-id "+strconv.FormatInt(sid, 10)+" ") {
			driver = pid
			m.DriverMB = float64(p.rssKB) / 1024
		}
	}
	if driver == 0 {
		return m, fmt.Errorf("no interpreter for session %d under pid %d", sid, root)
	}
	for _, pid := range under(driver) {
		p := procs[pid]
		switch {
		case strings.Contains(p.cmdline, "java"):
			m.JVMMB += float64(p.rssKB) / 1024
		case strings.Contains(p.cmdline, "python"):
			m.WorkersMB += float64(p.rssKB) / 1024
		}
	}
	return m, nil
}

func machineInfo() report.Machine {
	m := report.Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				m.MemoryGiB = kb / (1 << 20)
			}
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				if _, v, ok := strings.Cut(line, ":"); ok {
					m.CPU = strings.TrimSpace(v)
				}
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvgAtStart = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return m
}
